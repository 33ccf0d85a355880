"""Benchmarks that ship with JARVIS: `jarvis bench` (engine tables), openai_bench, http_stats_bench."""

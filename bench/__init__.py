"""Developer benchmarks that stay in the checkout (reliability soaks, hostile model files, the UI
refresh bench). The ones a user can run ship inside the package: `jarvis bench` (jarvis/bench/)."""

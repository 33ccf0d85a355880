"""The "Get models" dialog: curated list, any REPO/FILE, downloads with progress, delete."""

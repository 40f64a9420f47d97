"""Playlist-continuation experiments: tuning, test runs and ablations (above training and
evaluation, which they both use)."""

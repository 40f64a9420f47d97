"""Loaders for real data (MPD JSON, audio-feature CSVs, lyrics) into the database."""

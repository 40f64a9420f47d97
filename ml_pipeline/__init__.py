"""Offline pipeline: ingest, features, training, evaluation, export."""

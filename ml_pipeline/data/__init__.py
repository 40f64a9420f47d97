"""Datasets: listening sequences from the database, splits held out by whole file, the synthetic
catalog, track texts.
"""

"""Offline evaluation: ranking metrics, the peers' and the interest graph's evaluations, results as
JSON and the generated tables of docs/results.md.
"""

"""Scheduled and one-off jobs: weekly retraining, promotion (staging, canary, production),
embedding new tracks, recommending from a checkpoint.
"""

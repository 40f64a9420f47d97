"""The two-stage recommender: candidate sources, the ranker's features, the LightGBM ranker,
and the model's directory."""

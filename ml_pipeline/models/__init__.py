"""The model families (torch and numpy): SASRec, the LLaRA-style hybrid, matrix factorization and
the baselines, the text encoder, the torch cold-start path, generative re-ranking.
"""

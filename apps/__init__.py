"""Processes that serve traffic: `apps.api` (public FastAPI) and `apps.ml` (model service)."""

"""Shared domain code: settings, schema, data access, event types.

Apps and the pipeline import these; nothing here imports them."""

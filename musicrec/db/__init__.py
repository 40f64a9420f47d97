"""Schema (SQLAlchemy models), engine/session factory and the bulk writer."""

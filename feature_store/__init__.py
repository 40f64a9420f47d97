"""Feast feature repository (entities, feature views, push sources) and the feature jobs that
fill it from listening_events. Built in the feature-store issue."""

"""The interest graph at ranking time: the validated graph's schema, the catalog's facets, a
listener's affinity for each candidate."""

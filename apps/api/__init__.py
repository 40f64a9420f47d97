"""Public HTTP API that web and mobile apps call (recommendations, /predict, feedback, health,
metrics). Built in the serving issue on top of musicrec and apps.ml."""

"""Model service: loads the production model and reads online features per request. Built in the
serving issue."""

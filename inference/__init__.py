"""The serving runtime: what scores and ranks a request, on numpy and onnxruntime only (no torch,
no training code), so that API and ML service processes start fast and small."""

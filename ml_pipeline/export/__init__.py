"""Export for serving: the int8 ONNX scoring graph and its parity with the torch model."""

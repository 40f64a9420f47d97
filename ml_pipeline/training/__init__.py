"""Training: the transformer trainer, experiment tracking (TensorBoard, MLflow), the training
record.
"""

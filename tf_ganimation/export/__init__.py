"""The generator for deployment: versioned SavedModels for TF Serving, TFLite files for edge GPUs
with their GPU-delegate check, and `EditModel` backends that run both."""

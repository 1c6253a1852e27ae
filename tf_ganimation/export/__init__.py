"""The generator for deployment: versioned SavedModels for TF Serving, TFLite files for edge GPUs
with their GPU-delegate check, and `EditModel` backends that run both."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

"""Procedural faces driven by AUs: identities, their geometry, the renderer, and dataset folders
of them, whose true edits give evaluation a ground truth."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

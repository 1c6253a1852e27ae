"""Scores for a trained generator: paired metrics against true renderings of synthetic faces
(synthetic_edits), self-consistency metrics on any data (metrics), the in-training probe (probe),
the evaluation sheet (sheet), and the evaluation of a run folder (evaluator)."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

"""AU-labelled faces on disk and in tf.data: the three folder layouts, AU tables, TFRecords,
the training and evaluation pipelines, and training sets made from photos."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

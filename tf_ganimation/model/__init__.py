"""The paper: layers, the generator and critic (Fig. 3), the losses (Sec. 4.2), the optimizers and
their schedule (Sec. 5), the GANimation train_step, and the one edit abstraction (`EditModel`)."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

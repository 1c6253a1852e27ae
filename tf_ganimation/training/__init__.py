"""`trainer.train(config, workdir)`: the step loop over a distribution strategy (strategy), the run's length
(schedule), checkpoints that survive a kill (checkpoints), monitoring (monitor) and faults (faults)."""

from tf_ganimation import _deprecated_paths

__getattr__ = _deprecated_paths.old_module_getattr(__name__)  # the names of the old flat module

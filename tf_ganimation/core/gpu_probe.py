"""TensorFlow's GPU probe, skipped on a Linux machine that has no GPU driver to probe.

TensorFlow's Linux wheels register a CUDA device factory, and the first device query (every run makes
one) calls cuInit. Without an NVIDIA driver there is no libcuda to call, TensorFlow's stub answers
error 303 and XLA logs at ERROR level (xla/stream_executor/cuda/cuda_platform.cc):

    E... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)

The run then uses the CPU, as it would have anyway: the line reports no fault, yet reads like one.
`CUDA_VISIBLE_DEVICES=""` does not stop it (the probe fails before it reads that), and hiding ERROR
lines (TF_CPP_MIN_LOG_LEVEL) would hide real ones. So, before TensorFlow is first imported,
`skip_without_driver` sets TensorFlow's own allow-list of device factories, TF_ENABLED_DEVICE_TYPES, to
the CPU ones: the CUDA factories are then never registered, nothing calls cuInit, and TensorFlow says so
in an INFO line ("Device factory 'GPU' disabled by TF_ENABLED_DEVICE_TYPES environment variable.").

It cannot hide a real error: it silences no log line, it only skips a probe that can find nothing, and
it changes nothing unless all of these hold, so a machine with any GPU keeps today's behaviour, errors
included:
  * the machine runs Linux (the only platform whose TensorFlow probes CUDA) and TensorFlow is not
    imported yet (the allow-list is read once, at start-up);
  * the user set neither CUDA_VISIBLE_DEVICES nor TF_ENABLED_DEVICE_TYPES (their choice stands);
  * no GPU driver is visible: no NVIDIA kernel driver (/proc/driver/nvidia, /dev/nvidiactl), no WSL2
    GPU (/dev/dxg), no ROCm (/dev/kfd), no TPU (/dev/accel*, /dev/vfio);
  * no TensorFlow device plugin is installed (tensorflow-plugins/, TF_PLUGGABLE_DEVICE_LIBRARY_PATH),
    nor libtpu: their device types would fall outside the allow-list.

Imports nothing of TensorFlow: it must run before TensorFlow does (cli.prepare_tensorflow, when a script
first imports TensorFlow).
"""

from __future__ import annotations

import glob
import os
import site
import sys
from collections.abc import Callable, Iterable, MutableMapping

# Any of these means a GPU or TPU driver may answer TensorFlow's probe (globs).
DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd", "/dev/accel*", "/dev/vfio")
# The device variables a user sets to choose devices; when either is set, it decides.
USER_DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "TF_ENABLED_DEVICE_TYPES")
# TensorFlow's device factories that need no driver: the host, and XLA's host device.
CPU_DEVICE_TYPES = "CPU,XLA_CPU"


def driver_present(exists: Callable[[str], bool] | None = None) -> bool:
    """True when a path of DRIVER_PATHS exists: a GPU or TPU may be there. `exists` takes a glob."""
    exists = exists or (lambda pattern: bool(glob.glob(pattern)))
    return any(exists(pattern) for pattern in DRIVER_PATHS)


def device_plugin_installed(search_path: Iterable[str] | None = None,
                            environ: MutableMapping[str, str] | None = None) -> bool:
    """True when TensorFlow would load a device plugin or libtpu: their devices have types of their own.

    Args:
        search_path: the folders TensorFlow looks for tensorflow-plugins/ in (sys.path and site-packages).
        environ: the environment (os.environ).
    """
    environ = os.environ if environ is None else environ
    if environ.get("TF_PLUGGABLE_DEVICE_LIBRARY_PATH"):
        return True
    if search_path is None:
        search_path = [*sys.path, *getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    return any(os.path.isdir(os.path.join(folder, name)) for folder in search_path
               for name in ("tensorflow-plugins", "libtpu"))


def skip_without_driver(environ: MutableMapping[str, str] | None = None, *, platform: str | None = None,
                        tensorflow_imported: bool | None = None, gpu_or_plugin: bool | None = None) -> bool:
    """Restricts TensorFlow to its CPU devices when it could find no other; True when it did.

    Args:
        environ: the environment to read and change (os.environ).
        platform: sys.platform.
        tensorflow_imported: whether TensorFlow is loaded already (from sys.modules).
        gpu_or_plugin: whether a driver or a device plugin is present (driver_present,
            device_plugin_installed).

    The keyword arguments are for tests; the defaults read this process and this machine.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if tensorflow_imported is None:
        tensorflow_imported = "tensorflow" in sys.modules
    if (not platform.startswith("linux") or tensorflow_imported
            or any(name in environ for name in USER_DEVICE_VARIABLES)):
        return False
    if gpu_or_plugin is None:
        gpu_or_plugin = driver_present() or device_plugin_installed(environ=environ)
    if gpu_or_plugin:
        return False
    environ["TF_ENABLED_DEVICE_TYPES"] = CPU_DEVICE_TYPES
    return True

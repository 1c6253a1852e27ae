"""The Vulkan devices on which LiteRT's GPU accelerator runs here, found by trying the installed drivers.

    devices = vulkan_devices.find_vulkan_devices()    # () when there is none: vulkan_devices.no_device_message()
    devices[0].driver, devices[0].adapter, devices[0].float16

Drivers tried, each in a child process (litert_gpu_process.py) with a 2-operator probe model:
- a hardware GPU's (every installed manifest except lavapipe's, where a GPU device node exists);
- SwiftShader, which Debian's `chromium` package ships (/usr/lib/chromium): float32 arithmetic only;
- Mesa's lavapipe (`mesa-vulkan-drivers`): Mesa 25 (bookworm-backports) runs the accelerator with
  float16 shader arithmetic, what phones' GPU delegates use by default; Debian 12's own Mesa 22.3 finds
  no adapter ("Vulkan shaderUniform*ArrayDynamicIndexing required").
Whether a device computes in float16 when allowed is measured: the probe computes (x + 1000) - 1000 at
x = 0.1, which is 0 in float16 (its spacing at 1000 is 0.5) and 0.1 in float32.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os

import numpy as np

from tf_ganimation.export import litert_gpu_process

SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.json"
_ICD_FOLDERS = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d")


@dataclasses.dataclass(frozen=True)
class VulkanDevice:
    """A Vulkan driver on which LiteRT's GPU accelerator found an adapter.

    Attributes:
        driver: "swiftshader", "lavapipe", or "hardware" (every other installed driver, tried together).
        icd_paths: the driver manifests (VK_ICD_FILENAMES) that select it.
        adapter: the adapter the accelerator chose, as it logs it ("SwiftShader Device (Subzero), ...").
        float16: whether the device computes in float16 when the delegate may (measured).
    """

    driver: str
    icd_paths: tuple[str, ...]
    adapter: str
    float16: bool

    @property
    def environment(self) -> dict:
        return {"VK_ICD_FILENAMES": os.pathsep.join(self.icd_paths)}


def _candidate_drivers() -> list[tuple[str, tuple[str, ...]]]:
    candidates = []
    hardware = sorted(path for folder in _ICD_FOLDERS for path in glob.glob(os.path.join(folder, "*.json"))
                      if os.path.basename(path) != os.path.basename(LAVAPIPE_ICD))
    # A hardware driver needs its device node; without one, trying the drivers only costs time.
    if hardware and (glob.glob("/dev/dri/renderD*") or glob.glob("/dev/nvidia[0-9]*")):
        candidates.append(("hardware", tuple(hardware)))
    for driver, path in (("swiftshader", SWIFTSHADER_ICD), ("lavapipe", LAVAPIPE_ICD)):
        if os.path.isfile(path):
            candidates.append((driver, (path,)))
    return candidates


@functools.cache
def _probe_model() -> bytes:
    """A 2-operator model, y = (x + 1000) - 1000 on x [1, 4]: 0 in float16 at x = 0.1, 0.1 in float32."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 1, 1, 4], tf.float32, name="x")])
    def probe(x):
        return (x + 1000.0) - 1000.0

    return tf.lite.TFLiteConverter.from_concrete_functions([probe.get_concrete_function()], probe).convert()


@functools.cache
def find_vulkan_devices() -> tuple[VulkanDevice, ...]:
    """The Vulkan devices LiteRT's GPU accelerator can use here: a hardware GPU first, then software ones.

    Each installed driver is tried in a child process with the probe model (a few seconds each, once per
    process). Software drivers whose adapter is not a CPU one are skipped, as are drivers with no adapter.
    """
    devices = []
    probe = _probe_model()
    inputs = {"x": np.full([1, 1, 1, 4], 0.1, np.float32)}
    for driver, icd_paths in _candidate_drivers():
        run = litert_gpu_process.run(probe, icd_paths, enforce_f32=False, inputs=inputs, timeout_s=120)
        if not run.get("compiled") or "adapter" not in run:
            continue
        if driver == "hardware" and "CPU" in run["adapter"].split("adapterType=")[-1]:
            continue  # a software adapter reached through another driver: tried on its own below
        float16 = bool(np.all(np.abs(np.asarray(run["outputs"][0])) < 0.05))
        devices.append(VulkanDevice(driver, icd_paths, run["adapter"], float16))
    return tuple(devices)


def no_device_message() -> str:
    return ("no Vulkan device found: the GPU runtime check did not run (only the static rules of "
            "gpu_compatibility.py did). On Debian, `apt-get install chromium` installs SwiftShader (float32) and "
            "`apt-get install -t bookworm-backports mesa-vulkan-drivers` Mesa 25's lavapipe (float16); "
            "see BUILD_NOTES.md")

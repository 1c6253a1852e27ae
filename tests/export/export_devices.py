"""The Vulkan devices the GPU runtime tests run on: skipped where none is found, a failure where one is required.

CI installs SwiftShader and Mesa 25's lavapipe (.ci/run, BUILD_NOTES.md) and sets
TF_GANIMATION_REQUIRE_VULKAN=1, so that a missing device fails the tests there instead of skipping them.
"""

import os

import pytest

from tf_ganimation.export import vulkan_devices


def _missing(what: str):
    message = f"{what}: {vulkan_devices.no_device_message()}"
    if os.environ.get("TF_GANIMATION_REQUIRE_VULKAN") == "1":
        pytest.fail(message)
    pytest.skip(message)


def first_device() -> vulkan_devices.VulkanDevice:
    devices = vulkan_devices.find_vulkan_devices()
    if not devices:
        _missing("no Vulkan device")
    return devices[0]


def float16_device() -> vulkan_devices.VulkanDevice:
    devices = [device for device in vulkan_devices.find_vulkan_devices() if device.float16]
    if not devices:
        _missing("no Vulkan device with float16 arithmetic")
    return devices[0]

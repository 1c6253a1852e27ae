import os

from export_devices import first_device

from tf_ganimation.export import vulkan_devices


def test_each_device_found_names_its_adapter_and_whether_it_computes_in_float16():
    device = first_device()
    assert device.adapter and "backend=Vulkan" in device.adapter
    assert all(os.path.isfile(path) for path in device.icd_paths)
    assert device.environment == {"VK_ICD_FILENAMES": os.pathsep.join(device.icd_paths)}
    by_driver = {found.driver: found for found in vulkan_devices.find_vulkan_devices()}
    if "swiftshader" in by_driver:  # SwiftShader has no float16 shader arithmetic: the probe gives 0.1
        assert "SwiftShader" in by_driver["swiftshader"].adapter and by_driver["swiftshader"].float16 is False
    if "lavapipe" in by_driver:  # Mesa 25's lavapipe has it: the probe gives 0
        assert "llvmpipe" in by_driver["lavapipe"].adapter and by_driver["lavapipe"].float16 is True


def _devices_found_among(monkeypatch, candidates):
    """find_vulkan_devices() when `candidates` lists the drivers, its cache cleared before and after."""
    monkeypatch.setattr(vulkan_devices, "_candidate_drivers", candidates)
    vulkan_devices.find_vulkan_devices.cache_clear()
    try:
        return vulkan_devices.find_vulkan_devices()
    finally:
        monkeypatch.undo()
        vulkan_devices.find_vulkan_devices.cache_clear()


def test_without_drivers_nothing_is_found_and_the_message_says_what_to_install(monkeypatch):
    assert _devices_found_among(monkeypatch, list) == ()
    message = vulkan_devices.no_device_message()
    assert "no Vulkan device found" in message and "apt-get install chromium" in message
    assert "mesa-vulkan-drivers" in message


def test_a_driver_without_an_adapter_is_skipped(monkeypatch, tmp_path):
    missing = str(tmp_path / "missing_icd.json")
    assert _devices_found_among(monkeypatch, lambda: [("hardware", (missing,))]) == ()

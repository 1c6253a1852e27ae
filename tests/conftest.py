"""Shared fixtures: tiny networks (32 px, 8 filters) and tiny datasets, so every test runs in seconds on 2 cores."""

import atexit
import functools
import os
import pathlib
import pickle
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core.config import DataConfig, ModelConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "photos"

TINY_MODEL = ModelConfig(image_size=32, generator_filters=8, generator_residual_blocks=1,
                         critic_filters=8, critic_layers=3)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture
def photos_dir() -> pathlib.Path:
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return PHOTOS_DIR


# Where MTCNN (mtcnn 1.0) finds the one face of astronaut.png: x, y, width, height.
ASTRONAUT_BOX = (182, 64, 83, 107)


def shared_photo(name: str) -> np.ndarray:
    """A photo of ../shared/data/photos as image_files.read_photo reads it; skips the test when absent."""
    from tf_ganimation.core import image_files

    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return image_files.read_photo(PHOTOS_DIR / name)


# Built once per test process (functools.cache) and handed to every test that asks: tests only read them.


@functools.cache
def _tiny_run_dir() -> pathlib.Path:
    from tf_ganimation.core.config import Config
    from tf_ganimation.model import networks
    from tf_ganimation.runs import run_folder

    path = pathlib.Path(tempfile.mkdtemp(prefix="tiny_run_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=TINY_MODEL.image_size)), path)
    networks.build_generator(TINY_MODEL).save_weights(path / run_folder.GENERATOR_WEIGHTS)
    networks.build_critic(TINY_MODEL).save_weights(path / run_folder.CRITIC_WEIGHTS)
    return path


@pytest.fixture(scope="module")
def tiny_run_dir() -> pathlib.Path:
    """A training run's folder with an untrained TINY_MODEL generator and critic (the critic estimates AUs).

    One for all tests: they read it and never write into it.
    """
    return _tiny_run_dir()


@functools.cache
def _detector():
    from tf_ganimation.faces import detection

    return detection.FaceDetector()


@pytest.fixture(scope="module")
def detector():
    """One MTCNN face detector for all tests (building it loads three networks)."""
    return _detector()


@functools.cache
def _astronaut() -> np.ndarray:
    return shared_photo("astronaut.png")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return _astronaut()


@functools.cache
def _astronaut_face():
    return _detector().detect(_astronaut())[0]


@pytest.fixture(scope="module")
def astronaut_face():
    return _astronaut_face()


# The first lines of a test script run in a subprocess on two logical CPU devices (they must be set up
# before TensorFlow starts): a MirroredStrategy over them and a tiny GANimation config, batch 4, n_critic 2.
TWO_CPU_DEVICES_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
sys.path.insert(0, "tests")
from conftest import TINY_MODEL, random_batch
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.model import ganimation
from tf_ganimation.training import trainer

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
config = Config(model=TINY_MODEL, data=DataConfig(image_size=32, batch_size=4, n_critic=2))
"""


def random_batch(batch_size: int, n_critic: int, image_size: int, seed: int = 0) -> dict:
    """A train_step element: images [B, n_critic, S, S, 3] in [-1, 1], AUs [B, n_critic, 17] in [0, 1]."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, n_critic)
    return {
        "real_image": rng.uniform(-1, 1, shape + (image_size, image_size, 3)).astype(np.float32),
        "real_aus": rng.uniform(0, 1, shape + (17,)).astype(np.float32),
        "target_aus": rng.uniform(0, 1, shape + (17,)).astype(np.float32),
    }


def tiny_generator(seed: int = 0):
    """A seeded, built generator of TINY_MODEL's sizes (32 px, 8 filters, 1 residual block)."""
    import keras

    from tf_ganimation.model import networks

    keras.utils.set_random_seed(seed)
    return networks.build_generator(TINY_MODEL)


def expressive_critic(seed: int = 0):
    """A seeded, built critic of TINY_MODEL's sizes whose AU head answers raw values of spread ~1.

    An untrained head answers ~0.001, which estimate_aus clips to nearly 0 everywhere; this one's
    estimates fall below 0, inside [0, 1] and above 1, so clipping and equality are both tested.
    """
    import keras

    from tf_ganimation.model import networks

    keras.utils.set_random_seed(seed)
    critic = networks.build_critic(TINY_MODEL)
    images = np.random.default_rng(seed).uniform(-1, 1, [8, TINY_MODEL.image_size, TINY_MODEL.image_size, 3])
    spread = float(np.std(critic(images.astype(np.float32))["aus"]))
    critic.aus_head.kernel.assign(critic.aus_head.kernel / spread)
    return critic


@functools.cache
def _expressive_run_dir() -> pathlib.Path:
    from tf_ganimation.core.config import Config
    from tf_ganimation.runs import run_folder

    path = pathlib.Path(tempfile.mkdtemp(prefix="expressive_run_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=TINY_MODEL.image_size)), path)
    tiny_generator().save_weights(path / run_folder.GENERATOR_WEIGHTS)
    expressive_critic().save_weights(path / run_folder.CRITIC_WEIGHTS)
    return path


@pytest.fixture(scope="module")
def expressive_run_dir() -> pathlib.Path:
    """A training run's folder with tiny_generator() and expressive_critic(): estimated AUs spread over [0, 1].

    One for all tests: they read it and never write into it.
    """
    return _expressive_run_dir()


def tiny_gan(seed: int = 1, n_critic: int = 2):
    """A seeded GANimation of TINY_MODEL's sizes with both optimizers, as ganimation.make_gan makes it."""
    import keras

    from tf_ganimation.core.config import Config
    from tf_ganimation.model import ganimation

    keras.utils.set_random_seed(seed)
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32, n_critic=n_critic))
    return ganimation.make_gan(config, total_steps=100, decay_steps=0)


def scalar_summaries(log_dir: pathlib.Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the scalar summaries in a run's TensorBoard logs."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(os.fspath(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0:
                    scalars.setdefault(value.tag, {})[event.step] = float(array)
    return scalars


# === Tiny datasets in the authors' layout (inventory.py layout (a)) ===


def half_image(size, left, right, mode="RGB"):
    """size x size image, left half one color, right half another (a flip is visible)."""
    array = np.zeros([size, size, 3], np.uint8)
    array[:, : size // 2] = left
    array[:, size // 2:] = right
    image = Image.fromarray(array)
    return image.convert(mode) if mode != "RGB" else image


def raw_aus_of(index, count):
    """Distinct raw 0..5 AUs per example: AU01 = 5 * index / count, the others a fixed ramp."""
    raw = np.linspace(0.0, 4.0, 17)
    raw[0] = 5.0 * index / count
    return raw


def make_ganimation_dir(root, num_train=12, num_test=4, size=24, protocol=2):
    """Layout (a) with JPEGs whose left half is dark and right half bright; returns the ids per split."""
    os.makedirs(root / "imgs")
    count = num_train + num_test
    ids = [f"face_{i:03d}" for i in range(count)]
    table = {}
    for i, example_id in enumerate(ids):
        half_image(size, 20 + i, 230 - i).save(root / "imgs" / f"{example_id}.jpg", quality=95)
        table[f"{example_id}.jpg" if i % 2 else example_id] = raw_aus_of(i, count)
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=protocol))
    (root / "train_ids.csv").write_text("\n".join(f"{i}.jpg" for i in ids[:num_train]) + "\n")
    (root / "test_ids.csv").write_text("\n".join(ids[num_train:]) + "\n")
    return ids[:num_train], ids[num_train:]


@pytest.fixture
def ganimation_dir(tmp_path):
    make_ganimation_dir(tmp_path / "faces")
    return tmp_path / "faces"


def config_for(path, **overrides):
    settings = dict(data_dir=str(path), image_size=16, batch_size=4, n_critic=2, shuffle_buffer=16)
    settings.update(overrides)
    return DataConfig(**settings)


def random_inputs(batch: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the edit contract: images float32 [batch, size, size, 3] and AUs [batch, 17], in [0, 1]."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, [batch, size, size, 3]).astype(np.float32),
            rng.uniform(0, 1, [batch, 17]).astype(np.float32))


def expected_images(generator, images, aus) -> np.ndarray:
    """What a served or exported generator must answer: edit_model.edit_images' "images", as numpy."""
    from tf_ganimation.model import edit_model

    return edit_model.edit_images(generator, images, aus)["images"].numpy()


def headless_chromium(flags, user_data_dir, install: str):
    """Headless Chromium under Selenium with `flags`, its performance log on (the requests it made).

    Skips the test, saying what to install, when chromium, chromedriver or selenium (`install`) is missing.
    """
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed: {install}")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*flags, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]



# === Step bundles (scripts/export_step.py, scripts/step_bundle.py and step_runner.py) ===

# A Python with numpy and jax for the step runner: $STEP_RUNNER_PYTHON, else the .venv-jax that .ci/run
# makes (requirements-jax.txt), else a python3.12 on the PATH that has jax.
STEP_RUNNER_PYTHON = "STEP_RUNNER_PYTHON"
TINY_STEP_SETTING = "32px_batch2_float32"


@functools.cache
def _jax_python() -> str | None:
    import shutil
    import subprocess

    candidates = [os.environ.get(STEP_RUNNER_PYTHON), str(PROJECT_ROOT / ".venv-jax" / "bin" / "python"),
                  shutil.which("python3.12")]
    for candidate in filter(None, candidates):
        if os.path.isfile(candidate) and subprocess.run([candidate, "-c", "import jax, numpy"],
                                                        capture_output=True, check=False).returncode == 0:
            return candidate
    return None


@pytest.fixture
def jax_python() -> str:
    """A Python interpreter with numpy and jax; the test is skipped, saying how to get one, when none is found."""
    python = _jax_python()
    if python is None:
        pytest.skip(f"no Python with jax for the step runner: set {STEP_RUNNER_PYTHON}, or make .venv-jax as "
                    ".ci/run does (python3 -m venv .venv-jax && .venv-jax/bin/pip install -r requirements-jax.txt)")
    return python


@functools.cache
def _tiny_step_bundle() -> pathlib.Path:
    import subprocess
    import sys

    root = pathlib.Path(tempfile.mkdtemp(prefix="tiny_step_bundle_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    result = subprocess.run([sys.executable, "scripts/export_step.py", "--tiny", "--batch_sizes=2",
                             "--precisions=float32", f"--out={root}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def tiny_step_bundle() -> pathlib.Path:
    """The root of a step bundle the bundle command wrote (--tiny, batch 2, float32, GPU layers, loops of
    2 steps): one setting folder, TINY_STEP_SETTING. Tests only read it."""
    return _tiny_step_bundle()

"""Export of a trained generator as a versioned SavedModel for TF Serving (and the TFLite converter).

    <export_base>/<version>/saved_model.pb, variables/   the graph and the networks' weights (stored once)
    <export_base>/<version>/assets/ganimation.json       AU names and order, image size, value ranges, signatures
    <export_base>/<version>/assets.extra/tf_serving_warmup_requests
                                                         PredictionLog records TF Serving replays when it loads

Signatures (every image and AU value range below is a contract, tested in tests/export/test_saved_model.py):

- `serving_default`: `images` float32 [N, S, S, 3] in [0, 1], `aus` float32 [N, 17] in [0, 1] ->
  `images` float32 [N, S, S, 3] in [0, 1] (the edited faces), `attention` float32 [N, S, S, 1] in [0, 1]
  (1 keeps the input pixel), `color` float32 [N, S, S, 3] in [0, 1].
- `encoded`: `image_bytes` string [N] (JPEG, PNG, GIF, BMP or WebP of any size: decoded to RGB, the first
  frame of an animation, resized to S x S without keeping the aspect ratio), `aus` float32 [N, 17] ->
  `image_bytes` string [N] (PNG, S x S RGB), `attention_bytes` string [N] (PNG, S x S grayscale).
  Names ending in `_bytes` make TF Serving's REST API answer `{"b64": ...}`.
- `animate`: `image` float32 [N, S, S, 3] in [0, 1], `start_aus` and `end_aus` float32 [N, 17],
  `num_frames` int32 [N] in [1, MAX_FRAMES] -> `frames` float32 [N, F, S, S, 3] in [0, 1] with
  F = max(num_frames), and `num_frames` int32 [N]. Row i interpolates linearly from start_aus[i] to
  end_aus[i] over num_frames[i] frames (as `action_units.interpolate`); frames past num_frames[i] repeat
  its last frame. All N * F frames go through the generator in one batched call.
- `describe_aus`: `aus` float32 [N, 17] -> `aus` float32 [N, 17] (the AUs as the model uses them),
  `au_names` string [N, 17] (OpenFace order), `image_size` int32 [N]: the AU vocabulary, discoverable
  through GetModelMetadata and one Predict call.
- `estimate_aus`, only in an export given the critic (a run folder's, by default): `image` float32
  [N, S, S, 3] in [0, 1] -> `aus` float32 [N, 17] in [0, 1], the critic's AU regression head on the face
  clipped to [0, 1] (as KerasEditModel.estimate_aus): the current expression of a face, for reenactment.

Every signature validates its inputs in the graph, with stock TensorFlow ops only: AUs or images that are
NaN or infinite fail with INVALID_ARGUMENT ("... must be finite"), AU intensities and image values
outside [0, 1] are clipped to [0, 1], batch sizes that differ between inputs fail with INVALID_ARGUMENT.
A wrong AU count or image size is refused by the signature's shape.

Besides the signatures, the SavedModel's root object has `edit(images, aus)`, a plain `tf.function` with
the inputs and outputs of `serving_default` but no validation, clipping or assert ops (TFLite's GPU
delegate must run it whole), and `metadata`, a string variable holding the same JSON as the asset.

Notes: `animate` takes and returns batches ([N, ...] / [N, F, ...]), not one image and [F, ...] frames,
because TF Serving's request batching (`--enable_batching`) batches every signature and requires each
output's first dimension to be the sum of the requests' first dimensions. For the same reason no
signature has a scalar input or zero inputs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from tf_ganimation.core import action_units, pixels
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import warmup
from tf_ganimation.model import edit_model, networks
from tf_ganimation.runs import loading

METADATA_FILE = "ganimation.json"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "encoded"
ANIMATE_SIGNATURE = "animate"
DESCRIBE_SIGNATURE = "describe_aus"
SIGNATURES = (DEFAULT_SIGNATURE, ENCODED_SIGNATURE, ANIMATE_SIGNATURE, DESCRIBE_SIGNATURE)
ESTIMATE_SIGNATURE = "estimate_aus"  # besides SIGNATURES when the export has the critic
# A cap on frames per animation so that one request cannot ask for an unbounded generator batch.
MAX_FRAMES = 64
METADATA_FORMAT_VERSION = 1


class VersionExistsError(FileExistsError, ValueError):
    """The export version folder exists already (a ValueError too, so scripts catch it with the rest)."""


def export_generator(generator: networks.Generator, export_base: os.PathLike, version: int | None = None,
                     model_config: ModelConfig | None = None, warmup: bool = True,
                     critic: networks.Critic | None = None) -> pathlib.Path:
    """Writes `generator` as SavedModel version `version` under `export_base`, atomically.

    The SavedModel is written into a hidden temporary folder inside `export_base` and renamed to
    `<export_base>/<version>/` when complete, so TF Serving (which polls `export_base`) never sees a
    partial version, and a failed export leaves nothing behind.

    Args:
        generator: a built `networks.Generator` (called at least once, e.g. by `networks.build_generator`).
        export_base: the model's base path, as TF Serving's `--model_base_path`; created if missing.
        version: a positive integer; None for one more than the highest existing version (1 if none).
        model_config: the run's ModelConfig (its image_size is the served size); None to take the sizes
            from the generator and the image size from the generator's first call.
        warmup: write `assets.extra/tf_serving_warmup_requests`.
        critic: a built `networks.Critic` at the served image size, whose AU head becomes the
            `estimate_aus` signature; None for the generator's signatures only.

    Returns:
        The path of the new version folder.

    Raises:
        VersionExistsError: `<export_base>/<version>` exists (versions are never overwritten).
        ValueError: an invalid version, an unbuilt generator, a model_config that does not match it, or a
            critic that does not give 17 AUs at the image size.
    """
    image_size = _resolve_image_size(generator, model_config)
    _check_critic(critic, image_size)
    export_base = pathlib.Path(export_base)
    export_base.mkdir(parents=True, exist_ok=True)
    version = next_version(export_base) if version is None else _check_version(version)
    target = export_base / str(version)
    if target.exists():
        raise VersionExistsError(f"{target} exists: export versions are never overwritten; pass another "
                                 f"--version or leave it out to export version {next_version(export_base)}")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=export_base))
    try:
        saved_model_dir = staging / "saved_model"
        metadata_path = staging / METADATA_FILE
        metadata = build_metadata(generator, image_size, model_config, critic)
        metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
        module = ServingModule(generator, image_size, metadata_path, critic)
        signatures = module.signatures()
        tf.saved_model.save(module, str(saved_model_dir), signatures=signatures)
        if warmup:
            write_warmup_requests(saved_model_dir / WARMUP_FILE, image_size, tuple(signatures))
        try:
            os.rename(saved_model_dir, target)
        except OSError as error:  # another export took this version between the check and the rename
            raise VersionExistsError(f"cannot rename the export into {target}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def export_from_workdir(workdir: os.PathLike, export_base: os.PathLike, version: int | None = None,
                        with_critic: bool = True) -> pathlib.Path:
    """Exports a training run's generator (runs/run_folder.py) at the run's image size, and with
    `with_critic` its critic (`estimate_aus`); a run without critic weights exports without it, warning."""
    generator, config = loading.load_generator(workdir)
    critic = None
    if with_critic:
        try:
            critic, _ = loading.load_critic(workdir)
        except FileNotFoundError as error:
            logging.warning("No critic in %s (%s): the export has no %s signature", workdir, error, ESTIMATE_SIGNATURE)
    return export_generator(generator, export_base, version, model_config=config.model, critic=critic)


def next_version(export_base: os.PathLike) -> int:
    """One more than the highest integer-named folder in `export_base`; 1 when none (or no folder)."""
    export_base = pathlib.Path(export_base)
    versions = [int(path.name) for path in export_base.iterdir()
                if path.name.isdigit()] if export_base.is_dir() else []
    return max(versions, default=0) + 1


def load_metadata(version_dir: os.PathLike) -> dict:
    """The `assets/ganimation.json` of an exported version, as a dict."""
    path = pathlib.Path(version_dir) / "assets" / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {version_dir} is not a GANimation export "
                                "(tf_ganimation.export writes it)")
    return json.loads(path.read_text())


def _check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version={version!r} is invalid: expected an integer >= 1 (TF Serving's version folders)")
    return int(version)


def _resolve_image_size(generator, model_config: ModelConfig | None) -> int:
    if not isinstance(generator, networks.Generator):
        raise ValueError(f"expected a networks.Generator, got {type(generator).__name__}")
    if not generator.built:
        raise ValueError("the generator has no weights yet: build it with networks.build_generator or call it once")
    if generator.num_aus != action_units.NUM_AUS:
        raise ValueError(f"the generator takes {generator.num_aus} AUs: the serving signatures use the "
                         f"{action_units.NUM_AUS} AUs of action_units.AU_NAMES")
    if model_config is None:
        # Keras records the shape of the first call; the generator itself is fully convolutional.
        input_shape = (getattr(generator, "_build_shapes_dict", None) or {}).get("input_shape")
        if not input_shape or input_shape[1] is None or input_shape[1] != input_shape[2] or input_shape[1] % 4:
            raise ValueError("cannot tell the generator's image size from its first call "
                             f"(input shape {input_shape}); pass model_config=ModelConfig(image_size=...)")
        return int(input_shape[1])
    mismatched = [f"{name}: generator {ours}, config {theirs}" for name, ours, theirs in (
        ("generator_filters", generator.filters, model_config.generator_filters),
        ("generator_residual_blocks", generator.residual_blocks, model_config.generator_residual_blocks),
        ("num_aus", generator.num_aus, model_config.num_aus)) if ours != theirs]
    if mismatched:
        raise ValueError(f"model_config does not describe this generator ({', '.join(mismatched)})")
    return model_config.image_size


def _check_critic(critic, image_size: int) -> None:
    if critic is None:
        return
    if not isinstance(critic, networks.Critic) or not critic.built:
        raise ValueError(f"expected a built networks.Critic as critic, got {type(critic).__name__}")
    # The AU head's kernel covers the final feature map of the size it was built at: at another size it
    # would answer several rows per face (networks.Critic).
    try:
        shape = tuple(critic(tf.zeros([1, image_size, image_size, 3]))["aus"].shape)
    except (ValueError, tf.errors.InvalidArgumentError):  # a kernel larger than the final map
        shape = ()
    if shape != (1, action_units.NUM_AUS):
        raise ValueError(f"the critic answers AUs of shape {list(shape)} for one {image_size} px face: expected "
                         f"[1, {action_units.NUM_AUS}] (a critic built at the served image size)")


def build_metadata(generator: networks.Generator, image_size: int, model_config: ModelConfig | None = None,
                   critic: networks.Critic | None = None) -> dict:
    """The JSON document stored as `assets/ganimation.json` and in the `metadata` attribute."""
    size = image_size
    image = {"dtype": "float32", "shape": [-1, size, size, 3], "range": [0.0, 1.0]}
    aus = {"dtype": "float32", "shape": [-1, action_units.NUM_AUS], "range": [0.0, 1.0]}
    estimate = {ESTIMATE_SIGNATURE: {"inputs": {"image": image}, "outputs": {"aus": aus}}} if critic else {}
    return {
        "format_version": METADATA_FORMAT_VERSION,
        "model": "GANimation generator (Pumarola et al., ECCV 2018)",
        "image_size": size,
        "num_aus": action_units.NUM_AUS,
        "au_names": list(action_units.AU_NAMES),
        "au_descriptions": dict(action_units.AU_DESCRIPTIONS),
        "au_range": [0.0, 1.0],
        "au_scale": f"OpenFace intensity / {action_units.MAX_RAW_INTENSITY:g}",
        "out_of_range_values": "AUs and image values outside [0, 1] are clipped to [0, 1]; NaN or Inf is an error",
        "max_frames": MAX_FRAMES,
        "generator": {"filters": generator.filters, "residual_blocks": generator.residual_blocks,
                      "weights": int(generator.count_params())},
        "model_config": dataclasses.asdict(model_config) if model_config is not None else None,
        "signatures": {
            DEFAULT_SIGNATURE: {
                "inputs": {"images": image, "aus": aus},
                "outputs": {"images": image, "attention": {**image, "shape": [-1, size, size, 1]}, "color": image}},
            ENCODED_SIGNATURE: {
                "inputs": {"image_bytes": {"dtype": "string", "shape": [-1],
                                           "format": "JPEG, PNG, GIF, BMP or WebP of any size, resized to image_size"},
                           "aus": aus},
                "outputs": {"image_bytes": {"dtype": "string", "shape": [-1], "format": "PNG RGB"},
                            "attention_bytes": {"dtype": "string", "shape": [-1], "format": "PNG grayscale"}}},
            ANIMATE_SIGNATURE: {
                "inputs": {"image": image, "start_aus": aus, "end_aus": aus,
                           "num_frames": {"dtype": "int32", "shape": [-1], "range": [1, MAX_FRAMES]}},
                "outputs": {"frames": {**image, "shape": [-1, -1, size, size, 3]},
                            "num_frames": {"dtype": "int32", "shape": [-1]}}},
            DESCRIBE_SIGNATURE: {
                "inputs": {"aus": aus},
                "outputs": {"aus": aus, "au_names": {"dtype": "string", "shape": [-1, action_units.NUM_AUS]},
                            "image_size": {"dtype": "int32", "shape": [-1]}}},
            **estimate,
        },
        "critic": {"filters": critic.filters, "layers": critic.layers_count,
                   "weights": int(critic.count_params())} if critic else None,
        "tensorflow_version": tf.__version__,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


class ServingModule(tf.Module):
    """The SavedModel's root: the networks' variables (tracked once), `edit`, the signatures, metadata.

    Notes: the variables are tracked as a flat list of the Keras variables' tf.Variables rather than by
    tracking the Keras model, which Keras 3's own export (`keras.export.ExportArchive`) does in a way
    that stores every weight twice (65 MB instead of 33 MB for the paper-size generator).
    """

    def __init__(self, generator: networks.Generator, image_size: int, metadata_path: os.PathLike,
                 critic: networks.Critic | None = None):
        super().__init__(name="ganimation")
        # Not tracked: Keras would add its own serving function and save the weights a second time.
        object.__setattr__(self, "_generator", generator)
        object.__setattr__(self, "_critic", critic)
        self._size = image_size
        self.generator_variables = [getattr(variable, "value", variable) for variable in generator.variables]
        if critic is not None:
            self.critic_variables = [getattr(variable, "value", variable) for variable in critic.variables]
        self.metadata = tf.Variable(pathlib.Path(metadata_path).read_text(), trainable=False, name="metadata")
        self.metadata_file = tf.saved_model.Asset(str(metadata_path))
        images = tf.TensorSpec([None, self._size, self._size, 3], tf.float32, name="images")
        aus = tf.TensorSpec([None, action_units.NUM_AUS], tf.float32, name="aus")
        self.edit = tf.function(self._edit, input_signature=[images, aus])

    def _edit(self, images, aus):
        """The model alone: images [N, S, S, 3] in [0, 1], aus [N, 17] -> images, attention, color."""
        return edit_model.edit_images(self._generator, images, aus)

    def signatures(self) -> dict:
        size, num_aus = self._size, action_units.NUM_AUS
        images = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        aus = tf.TensorSpec([None, num_aus], tf.float32, name="aus")
        return {
            DEFAULT_SIGNATURE: tf.function(self._serving_default, input_signature=[images, aus]),
            ENCODED_SIGNATURE: tf.function(self._encoded, input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes"), aus]),
            ANIMATE_SIGNATURE: tf.function(self._animate, input_signature=[
                tf.TensorSpec([None, size, size, 3], tf.float32, name="image"),
                tf.TensorSpec([None, num_aus], tf.float32, name="start_aus"),
                tf.TensorSpec([None, num_aus], tf.float32, name="end_aus"),
                tf.TensorSpec([None], tf.int32, name="num_frames")]),
            DESCRIBE_SIGNATURE: tf.function(self._describe_aus, input_signature=[aus]),
        } | ({ESTIMATE_SIGNATURE: tf.function(self._estimate_aus, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])} if self._critic is not None else {})

    # === Signatures: validation in the graph, then `edit` ===

    def _serving_default(self, images, aus):
        _assert_same_batch(images=images, aus=aus)
        return self.edit(_valid_images(images, "images"), _valid_aus(aus, "aus"))

    def _encoded(self, image_bytes, aus):
        _assert_same_batch(image_bytes=image_bytes, aus=aus)
        images = tf.map_fn(self._decode, image_bytes,
                           fn_output_signature=tf.TensorSpec([self._size, self._size, 3], tf.float32))
        outputs = self.edit(images, _valid_aus(aus, "aus"))
        return {"image_bytes": _encode_pngs(outputs["images"]), "attention_bytes": _encode_pngs(outputs["attention"])}

    def _decode(self, image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.float32, expand_animations=False)
        image.set_shape([None, None, 3])
        # Antialiased resize: a large photo of a face shrinks without aliasing; a face of the right size is kept.
        resized = tf.image.resize(image, [self._size, self._size], antialias=True)
        return tf.clip_by_value(resized, 0.0, 1.0)

    def _animate(self, image, start_aus, end_aus, num_frames):
        _assert_same_batch(image=image, start_aus=start_aus, end_aus=end_aus, num_frames=num_frames)
        checks = [
            tf.debugging.assert_greater_equal(num_frames, 1, message="num_frames must be >= 1"),
            tf.debugging.assert_less_equal(num_frames, MAX_FRAMES, message=f"num_frames must be <= {MAX_FRAMES}"),
        ]
        with tf.control_dependencies(checks):
            frames_count = tf.reduce_max(num_frames)
        image = _valid_images(image, "image")
        start_aus, end_aus = _valid_aus(start_aus, "start_aus"), _valid_aus(end_aus, "end_aus")
        # t[i, j] = j / (num_frames[i] - 1), capped at 1 (frames past num_frames[i] repeat the last one);
        # a single frame is the end expression, as action_units.interpolate.
        steps = tf.cast(tf.range(frames_count), tf.float32)[None, :]
        denominators = tf.cast(tf.maximum(num_frames - 1, 1), tf.float32)[:, None]
        weights = tf.where(num_frames[:, None] > 1, tf.minimum(steps / denominators, 1.0), 1.0)[..., None]
        frame_aus = (1.0 - weights) * start_aus[:, None, :] + weights * end_aus[:, None, :]  # [N, F, 17]
        batch = tf.shape(image)[0]
        frame_images = tf.repeat(image, frames_count, axis=0)  # [N * F, S, S, 3], image i repeated F times
        outputs = self.edit(frame_images, tf.reshape(frame_aus, [-1, action_units.NUM_AUS]))
        frames = tf.reshape(outputs["images"], [batch, frames_count, self._size, self._size, 3])
        return {"frames": frames, "num_frames": tf.identity(num_frames)}

    def _describe_aus(self, aus):
        aus = _valid_aus(aus, "aus")
        batch = tf.shape(aus)[0]
        names = tf.tile(tf.constant([action_units.AU_NAMES]), [batch, 1])
        return {"aus": aus, "au_names": names, "image_size": tf.fill([batch], tf.constant(self._size, tf.int32))}

    def _estimate_aus(self, image):
        real_image = pixels.unit_to_model(_valid_images(image, "image"))
        return {"aus": tf.clip_by_value(self._critic(real_image)["aus"], 0.0, 1.0)}


def _valid_aus(aus, name: str):
    aus = tf.debugging.assert_all_finite(aus, f"{name} must be finite AU intensities in [0, 1] (got NaN or Inf)")
    return tf.clip_by_value(aus, 0.0, 1.0)


def _valid_images(images, name: str):
    images = tf.debugging.assert_all_finite(images, f"{name} must be finite pixel values in [0, 1] (got NaN or Inf)")
    return tf.clip_by_value(images, 0.0, 1.0)


def _assert_same_batch(**tensors) -> None:
    names = list(tensors)
    sizes = [tf.shape(tensor)[0] for tensor in tensors.values()]
    for name, size in zip(names[1:], sizes[1:]):
        tf.debugging.assert_equal(size, sizes[0], message=f"{name} and {names[0]} must have the same batch size")


def _encode_pngs(images):
    """float32 [N, S, S, C] in [0, 1] -> string [N] PNG."""
    pixels = tf.image.convert_image_dtype(images, tf.uint8, saturate=True)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))


def write_warmup_requests(path: os.PathLike, image_size: int, signature_names: tuple = SIGNATURES) -> pathlib.Path:
    """Writes one PredictionLog per signature named (batch 1) to `path`, the TFRecord TF Serving replays on load."""
    gray = np.full([1, image_size, image_size, 3], 0.5, np.float32)
    zeros = np.zeros([1, action_units.NUM_AUS], np.float32)
    smile = action_units.preset("happy")[None, :]
    # A JPEG twice the model size, so that decoding and resizing are warmed up too.
    jpeg = tf.io.encode_jpeg(tf.fill([2 * image_size, 2 * image_size, 3], tf.constant(128, tf.uint8))).numpy()
    requests = {
        DEFAULT_SIGNATURE: {"images": gray, "aus": smile},
        ENCODED_SIGNATURE: {"image_bytes": np.array([jpeg], dtype=object), "aus": smile},
        ANIMATE_SIGNATURE: {"image": gray, "start_aus": zeros, "end_aus": smile,
                            "num_frames": np.array([2], np.int32)},
        DESCRIBE_SIGNATURE: {"aus": zeros},
        ESTIMATE_SIGNATURE: {"image": gray},
    }
    return warmup.write_prediction_logs(path, {name: requests[name] for name in signature_names})

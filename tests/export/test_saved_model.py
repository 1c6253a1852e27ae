"""tf_ganimation/export/saved_model.py: the signatures, their contracts and atomic versioned writes.

32 px, 8 filters.
"""

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config, DataConfig, ModelConfig
from tf_ganimation.export import saved_model
from tf_ganimation.model import networks
from tf_ganimation.runs import run_folder

from conftest import PROJECT_ROOT, TINY_MODEL, expressive_critic, random_inputs, tiny_generator

SIZE = 32




def expected_edit(generator, images, aus):
    """What serving_default must return: the Keras generator on [-1, 1] images, Eq. 1, back to [0, 1]."""
    real_image = images * 2.0 - 1.0
    outputs = generator(real_image, aus)
    fake_image = networks.compose(real_image, outputs["color"], outputs["attention"])
    return {"images": (fake_image.numpy() + 1) / 2, "attention": outputs["attention"].numpy(),
            "color": (outputs["color"].numpy() + 1) / 2}



@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    generator = tiny_generator()
    path = saved_model.export_generator(generator, tmp_path_factory.mktemp("models") / "ganimation")
    return generator, path, tf.saved_model.load(str(path))


@pytest.fixture(scope="module")
def exported_with_critic(tmp_path_factory):
    generator, critic = tiny_generator(), expressive_critic()
    path = saved_model.export_generator(generator, tmp_path_factory.mktemp("models") / "ganimation", critic=critic)
    return generator, critic, path, tf.saved_model.load(str(path))


def test_reloaded_serving_default_and_edit_equal_the_keras_generator(exported):
    generator, _, loaded = exported
    images, aus = random_inputs(3)
    expected = expected_edit(generator, images, aus)
    served = loaded.signatures["serving_default"](images=tf.constant(images), aus=tf.constant(aus))
    edited = loaded.edit(images, aus)
    for name in ("images", "attention", "color"):
        np.testing.assert_allclose(served[name].numpy(), expected[name], atol=1e-5)
        np.testing.assert_allclose(edited[name].numpy(), expected[name], atol=1e-5)
    assert served["attention"].shape == (3, SIZE, SIZE, 1)
    for name in ("images", "attention", "color"):
        assert 0.0 <= served[name].numpy().min() and served[name].numpy().max() <= 1.0


def test_out_of_range_aus_and_pixels_are_clipped(exported):
    _, _, loaded = exported
    images, aus = random_inputs(2)
    serve = loaded.signatures["serving_default"]
    wild_aus = np.where(aus > 0.5, 1.7, -0.3).astype(np.float32)
    clipped = serve(images=images, aus=wild_aus)["images"].numpy()
    reference = serve(images=images, aus=np.clip(wild_aus, 0, 1))["images"].numpy()
    np.testing.assert_array_equal(clipped, reference)
    bright = serve(images=images * 3 - 1, aus=aus)["images"].numpy()
    np.testing.assert_array_equal(bright, serve(images=np.clip(images * 3 - 1, 0, 1), aus=aus)["images"].numpy())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_aus_and_images_are_invalid_arguments(exported, bad):
    _, _, loaded = exported
    images, aus = random_inputs(1)
    aus[0, 3] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="aus must be finite"):
        loaded.signatures["serving_default"](images=images, aus=aus)
    images[0, 1, 1, 1] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
        loaded.signatures["serving_default"](images=images, aus=np.zeros([1, 17], np.float32))


def test_different_batch_sizes_are_invalid_arguments(exported):
    _, _, loaded = exported
    images, aus = random_inputs(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        loaded.signatures["serving_default"](images=images, aus=aus[:1])


def test_sixteen_aus_are_refused_by_the_signature_shape(exported):
    _, _, loaded = exported
    images, aus = random_inputs(1)
    with pytest.raises((TypeError, ValueError)):
        loaded.signatures["serving_default"](images=images, aus=aus[:, :16])


def _png(array_uint8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array_uint8).save(buffer, format="PNG")
    return buffer.getvalue()


def test_encoded_decodes_any_size_and_answers_pngs(exported):
    _, _, loaded = exported
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, [64, 48, 3], dtype=np.uint8)
    exact = rng.integers(0, 256, [SIZE, SIZE, 3], dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(big).save(jpeg, format="JPEG")
    aus = np.stack([action_units.preset("happy"), action_units.preset("sad")])
    outputs = loaded.signatures["encoded"](image_bytes=tf.constant([_png(exact), jpeg.getvalue()]), aus=aus)
    pictures = [Image.open(io.BytesIO(png)) for png in outputs["image_bytes"].numpy()]
    masks = [Image.open(io.BytesIO(png)) for png in outputs["attention_bytes"].numpy()]
    assert [(picture.format, picture.mode, picture.size) for picture in pictures] == [("PNG", "RGB", (SIZE, SIZE))] * 2
    assert [(mask.mode, mask.size) for mask in masks] == [("L", (SIZE, SIZE))] * 2
    # An image of the model's size is not resized: the PNG is serving_default's answer, quantised.
    expected = loaded.signatures["serving_default"](images=exact[None] / np.float32(255), aus=aus[:1])
    np.testing.assert_allclose(np.asarray(pictures[0]) / 255.0, expected["images"].numpy()[0], atol=1 / 255 + 1e-6)


def test_encoded_refuses_bytes_that_are_not_an_image(exported):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        loaded.signatures["encoded"](image_bytes=tf.constant([b"not an image"]), aus=np.zeros([1, 17], np.float32))


def test_animate_interpolates_like_action_units_interpolate(exported):
    generator, _, loaded = exported
    images, _ = random_inputs(2, seed=5)
    start = np.stack([action_units.preset("neutral"), action_units.preset("sad")])
    end = np.stack([action_units.preset("happy"), action_units.preset("surprise")])
    outputs = loaded.signatures["animate"](image=images, start_aus=start, end_aus=end,
                                            num_frames=tf.constant([3, 5]))
    frames = outputs["frames"].numpy()
    assert frames.shape == (2, 5, SIZE, SIZE, 3)
    np.testing.assert_array_equal(outputs["num_frames"].numpy(), [3, 5])
    for row, count in enumerate([3, 5]):
        path = action_units.interpolate(start[row], end[row], count)
        expected = expected_edit(generator, np.repeat(images[row:row + 1], count, axis=0), path)["images"]
        np.testing.assert_allclose(frames[row, :count], expected, atol=1e-5)
    # Frames past num_frames repeat the last one (TF Serving's batching may merge different lengths).
    np.testing.assert_array_equal(frames[0, 3], frames[0, 2])
    np.testing.assert_array_equal(frames[0, 4], frames[0, 2])


def test_animate_single_frame_is_the_end_expression_and_frame_counts_are_bounded(exported):
    generator, _, loaded = exported
    images, _ = random_inputs(1)
    end = action_units.preset("happy")[None]
    outputs = loaded.signatures["animate"](image=images, start_aus=np.zeros([1, 17], np.float32), end_aus=end,
                                            num_frames=tf.constant([1]))
    np.testing.assert_allclose(outputs["frames"].numpy()[0], expected_edit(generator, images, end)["images"],
                               atol=1e-5)
    for count in (0, saved_model.MAX_FRAMES + 1):
        with pytest.raises(tf.errors.InvalidArgumentError, match="num_frames must be"):
            loaded.signatures["animate"](image=images, start_aus=end, end_aus=end, num_frames=tf.constant([count]))


def test_describe_aus_names_the_vocabulary(exported):
    _, _, loaded = exported
    outputs = loaded.signatures["describe_aus"](aus=np.array([[2.0] + [0.5] * 16], np.float32))
    assert [name.decode() for name in outputs["au_names"].numpy()[0]] == list(action_units.AU_NAMES)
    np.testing.assert_array_equal(outputs["aus"].numpy(), [[1.0] + [0.5] * 16])
    np.testing.assert_array_equal(outputs["image_size"].numpy(), [SIZE])


def test_estimate_aus_is_the_critics_au_head_clipped_to_unit_range(exported_with_critic):
    _, critic, _, loaded = exported_with_critic
    images, _ = random_inputs(4, seed=7)
    estimated = loaded.signatures["estimate_aus"](image=tf.constant(images))["aus"].numpy()
    raw = critic(images * 2.0 - 1.0)["aus"].numpy()
    assert estimated.shape == (4, 17) and estimated.dtype == np.float32
    assert (raw < 0).any() and (raw > 1).any() and ((raw > 0.05) & (raw < 0.95)).any()  # all three regimes
    np.testing.assert_allclose(estimated, np.clip(raw, 0.0, 1.0), atol=1e-5)
    # Image values outside [0, 1] are clipped first, NaN is refused, like the other signatures' images.
    wild = images * 3 - 1
    np.testing.assert_array_equal(loaded.signatures["estimate_aus"](image=wild)["aus"].numpy(),
                                  loaded.signatures["estimate_aus"](image=np.clip(wild, 0, 1))["aus"].numpy())
    images[0, 2, 2, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="image must be finite"):
        loaded.signatures["estimate_aus"](image=images)


def test_the_critic_adds_estimate_aus_and_keeps_every_other_signature(exported, exported_with_critic):
    generator, _, _, with_critic = exported_with_critic
    _, _, without = exported
    assert set(with_critic.signatures) == {*saved_model.SIGNATURES, "estimate_aus"}
    assert set(without.signatures) == set(saved_model.SIGNATURES)
    images, aus = random_inputs(2, seed=8)
    for name in ("images", "attention", "color"):  # the generator's signatures are those of an export without
        np.testing.assert_allclose(with_critic.signatures["serving_default"](images=images, aus=aus)[name].numpy(),
                                   expected_edit(generator, images, aus)[name], atol=1e-5)
    for name in saved_model.SIGNATURES:
        assert (with_critic.signatures[name].structured_input_signature
                == without.signatures[name].structured_input_signature), name
        assert (with_critic.signatures[name].structured_outputs.keys()
                == without.signatures[name].structured_outputs.keys()), name


def test_a_critic_of_another_image_size_is_refused(tmp_path):
    small = networks.build_critic(ModelConfig(image_size=16, critic_filters=8, critic_layers=3))
    with pytest.raises(ValueError, match=r"critic answers AUs of shape \[9, 17\] for one 32 px face"):
        saved_model.export_generator(tiny_generator(), tmp_path, critic=small)
    with pytest.raises(ValueError, match="expected a built networks.Critic"):
        saved_model.export_generator(tiny_generator(), tmp_path, critic=tiny_generator())
    assert not any(tmp_path.iterdir())


def test_variables_are_stored_once(exported):
    generator, path, _ = exported
    stored = sum(file.stat().st_size for file in (path / "variables").iterdir())
    weights_bytes = 4 * generator.count_params()
    # Once: the weights plus the checkpoint's index and the small metadata string; twice would be >= 2x.
    assert weights_bytes < stored < weights_bytes + 64 * 1024


def test_generator_and_critic_variables_are_stored_once(exported_with_critic):
    generator, critic, path, _ = exported_with_critic
    stored = sum(file.stat().st_size for file in (path / "variables").iterdir())
    weights_bytes = 4 * (generator.count_params() + critic.count_params())
    assert weights_bytes < stored < weights_bytes + 64 * 1024


def test_metadata_asset_and_attribute(exported):
    _, path, loaded = exported
    metadata = saved_model.load_metadata(path)
    assert metadata["au_names"] == list(action_units.AU_NAMES)
    assert metadata["image_size"] == SIZE and metadata["num_aus"] == 17
    assert set(metadata["signatures"]) == set(saved_model.SIGNATURES)
    assert metadata["signatures"]["serving_default"]["inputs"]["images"]["shape"] == [-1, SIZE, SIZE, 3]
    assert json.loads(loaded.metadata.numpy()) == metadata
    assert pathlib.Path(loaded.metadata_file.asset_path.numpy().decode()) == path / "assets" / saved_model.METADATA_FILE
    assert set(loaded.signatures) == set(saved_model.SIGNATURES)
    assert metadata["critic"] is None


def test_metadata_lists_estimate_aus_and_the_critic(exported_with_critic):
    _, critic, path, _ = exported_with_critic
    metadata = saved_model.load_metadata(path)
    assert list(metadata["signatures"]) == [*saved_model.SIGNATURES, "estimate_aus"]
    assert metadata["signatures"]["estimate_aus"] == {
        "inputs": {"image": {"dtype": "float32", "shape": [-1, SIZE, SIZE, 3], "range": [0.0, 1.0]}},
        "outputs": {"aus": {"dtype": "float32", "shape": [-1, 17], "range": [0.0, 1.0]}}}
    assert metadata["critic"] == {"filters": 8, "layers": 3, "weights": critic.count_params()}


def _op_types(concrete_function) -> set[str]:
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_edit_has_no_validation_ops_but_the_signatures_do(exported):
    _, _, loaded = exported
    spec = [tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32), tf.TensorSpec([None, 17], tf.float32)]
    edit_ops = _op_types(loaded.edit.get_concrete_function(*spec))
    checks = {"Assert", "CheckNumerics", "ClipByValue", "DecodeImage", "EncodePng"}
    assert "Conv2D" in edit_ops and not edit_ops & checks
    assert {"Assert", "CheckNumerics"} <= _op_types(loaded.signatures["serving_default"])


def test_warmup_file_holds_one_request_per_signature(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, path, _ = exported
    records = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
               for record in tf.data.TFRecordDataset(str(path / saved_model.WARMUP_FILE))]
    assert (sorted(log.predict_log.request.model_spec.signature_name for log in records)
            == sorted(saved_model.SIGNATURES))


def test_warmup_file_warms_estimate_aus_too(exported_with_critic):
    from tensorflow_serving.apis import prediction_log_pb2

    _, _, path, loaded = exported_with_critic
    records = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
               for record in tf.data.TFRecordDataset(str(path / saved_model.WARMUP_FILE))]
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in records}
    assert sorted(requests) == sorted([*saved_model.SIGNATURES, "estimate_aus"])
    image = tf.make_ndarray(requests["estimate_aus"].inputs["image"])
    assert image.shape == (1, SIZE, SIZE, 3)
    assert loaded.signatures["estimate_aus"](image=image)["aus"].shape == (1, 17)  # the request runs


def test_versions_count_up_and_are_never_overwritten(tmp_path):
    generator = tiny_generator()
    base = tmp_path / "ganimation"
    assert saved_model.next_version(base) == 1
    assert saved_model.export_generator(generator, base, warmup=False).name == "1"
    assert saved_model.export_generator(generator, base, warmup=False).name == "2"
    with pytest.raises(saved_model.VersionExistsError, match="never overwritten"):
        saved_model.export_generator(generator, base, version=2, warmup=False)
    assert saved_model.export_generator(generator, base, version=7, warmup=False).name == "7"
    assert saved_model.next_version(base) == 8
    assert sorted(os.listdir(base)) == ["1", "2", "7"]  # no temporary folders left behind


def test_export_is_atomic_and_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    generator = tiny_generator()
    base = tmp_path / "ganimation"
    real_write = saved_model.write_warmup_requests
    seen_during_export = []

    def watching_write(path, image_size, signature_names):
        seen_during_export.append(sorted(name for name in os.listdir(base) if not name.startswith(".")))
        return real_write(path, image_size, signature_names)

    monkeypatch.setattr(saved_model, "write_warmup_requests", watching_write)
    saved_model.export_generator(generator, base)
    assert seen_during_export == [[]]  # the version folder appears only when complete
    assert os.listdir(base) == ["1"]

    def failing_write(path, image_size, signature_names):
        raise OSError("disk full")

    monkeypatch.setattr(saved_model, "write_warmup_requests", failing_write)
    with pytest.raises(OSError, match="disk full"):
        saved_model.export_generator(generator, base)
    assert os.listdir(base) == ["1"]


def test_invalid_arguments_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no weights yet"):
        saved_model.export_generator(networks.Generator(filters=8, residual_blocks=1), tmp_path)
    with pytest.raises(ValueError, match="version=0 is invalid"):
        saved_model.export_generator(tiny_generator(), tmp_path, version=0)
    with pytest.raises(ValueError, match="generator_filters: generator 8, config 64"):
        saved_model.export_generator(tiny_generator(), tmp_path,
                                     model_config=ModelConfig(image_size=32, critic_layers=3))
    assert not any(tmp_path.iterdir())


def test_export_from_workdir_uses_the_runs_image_size(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run = tmp_path / "run"
    run_folder.save_config(config, run)
    generator = networks.build_generator(TINY_MODEL)
    generator.save_weights(run / run_folder.GENERATOR_WEIGHTS)
    path = saved_model.export_from_workdir(run, tmp_path / "models")
    assert path == tmp_path / "models" / "1"
    assert saved_model.load_metadata(path)["model_config"]["image_size"] == 32
    images, aus = random_inputs(1)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=images, aus=aus)
    np.testing.assert_allclose(served["images"].numpy(), expected_edit(generator, images, aus)["images"], atol=1e-5)
    assert "estimate_aus" not in tf.saved_model.load(str(path)).signatures  # the run has no critic weights


def test_export_from_workdir_exports_the_runs_critic_unless_asked_not_to(tmp_path, expressive_run_dir):
    with_critic = tf.saved_model.load(str(saved_model.export_from_workdir(expressive_run_dir, tmp_path)))
    without = tf.saved_model.load(str(saved_model.export_from_workdir(expressive_run_dir, tmp_path,
                                                                      with_critic=False)))
    assert "estimate_aus" in with_critic.signatures and "estimate_aus" not in without.signatures
    images, _ = random_inputs(2, seed=9)
    np.testing.assert_allclose(with_critic.signatures["estimate_aus"](image=images)["aus"].numpy(),
                               np.clip(expressive_critic()(images * 2 - 1)["aus"].numpy(), 0, 1), atol=1e-5)


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(exported):
    _, path, _ = exported
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run([str(cli), "show", "--all", "--dir", str(path)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    for name in saved_model.SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert f"shape: (-1, {SIZE}, {SIZE}, 3)" in result.stdout and "shape: (-1, 17)" in result.stdout


@pytest.mark.slow
def test_export_script_exports_a_run_and_reports_user_errors(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run = tmp_path / "run"
    run_folder.save_config(config, run)
    networks.build_generator(TINY_MODEL).save_weights(run / run_folder.GENERATOR_WEIGHTS)
    script = [sys.executable, str(PROJECT_ROOT / "scripts" / "export.py")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    ok = subprocess.run(script + ["--workdir", str(run), "--export_dir", str(tmp_path / "models"), "--version", "3"],
                        capture_output=True, text=True, timeout=300, env=env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "models" / "3" / "saved_model.pb").is_file() and "models/3" in ok.stdout
    assert "signatures: serving_default, encoded, animate, describe_aus)" in ok.stdout  # no critic in the run
    networks.build_critic(TINY_MODEL).save_weights(run / run_folder.CRITIC_WEIGHTS)
    with_critic = subprocess.run(script + ["--workdir", str(run), "--export_dir", str(tmp_path / "models")],
                                 capture_output=True, text=True, timeout=300, env=env)
    assert with_critic.returncode == 0, with_critic.stderr
    assert "models/4 (signatures: serving_default, encoded, animate, describe_aus, estimate_aus)" in with_critic.stdout
    again = subprocess.run(script + ["--workdir", str(run), "--export_dir", str(tmp_path / "models"), "--version", "3"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 2 and "never overwritten" in again.stderr and "Traceback" not in again.stderr

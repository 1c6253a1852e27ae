"""Tests for tf_ganimation/data/inventory.py: layouts, validation and its summary, fuzzed files."""

import hashlib
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.data import annotations, inventory, pipeline

from conftest import config_for, half_image, make_ganimation_dir, raw_aus_of

# === Layouts ===


def test_ids_in_both_id_lists_are_reported(tmp_path):
    _, test_ids = make_ganimation_dir(tmp_path / "faces")
    with open(tmp_path / "faces" / "train_ids.csv", "a") as lists:
        lists.write(f"{test_ids[1]}\n{test_ids[0]}\n")
    examples = inventory.load_examples(config_for(tmp_path / "faces"))
    assert set(test_ids[:2]) <= set(examples.train.ids) & set(examples.test.ids)
    assert f"2 ids are in both id lists (first: {test_ids[0]})" in str(examples.summary)


def test_ganimation_layout(ganimation_dir):
    examples = inventory.load_examples(config_for(ganimation_dir))
    assert examples.data_format == "ganimation"
    assert examples.train.ids == tuple(f"face_{i:03d}" for i in range(12))
    assert examples.test.ids == tuple(f"face_{i:03d}" for i in range(12, 16))
    # raw / 5: AU01 of face_008 is 5 * 8 / 16 = 2.5 raw -> 0.5; the last AU is 4.0 raw -> 0.8.
    assert examples.train.aus.dtype == np.float32
    np.testing.assert_allclose(examples.train.aus[8, 0], 0.5)
    np.testing.assert_allclose(examples.train.aus[:, -1], 0.8)
    assert examples.summary.usable == {"train": 12, "test": 4}
    assert examples.summary.num_skipped == 0
    assert "found aus_openface.pkl" in str(examples.summary)


def write_openface_csv(path, faces):
    """A CSV as OpenFace FeatureExtraction writes it: `, ` between cells, `_r` and `_c` columns."""
    header = ["frame", "face_id", "timestamp", "confidence", "success"]
    header += [f"{name}_r" for name in action_units.AU_NAMES] + [f"{name}_c" for name in action_units.AU_NAMES]
    lines = [", ".join(header)]
    for face_id, (confidence, raw) in enumerate(faces):
        cells = ["1", str(face_id), "0.000", f"{confidence:.2f}", "1"]
        cells += [f"{value:.2f}" for value in raw] + ["1"] * 17
        lines.append(", ".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_openface_layout_with_hash_split(tmp_path):
    root = tmp_path / "openface_data"
    os.makedirs(root / "imgs")
    os.makedirs(root / "openface")
    ids = [f"img{i}" for i in range(30)]
    for i, example_id in enumerate(ids):
        half_image(20, 10, 200).save(root / "imgs" / f"{example_id}.png")
        # A less confident second face with other AUs must be ignored.
        write_openface_csv(root / "openface" / f"{example_id}.csv",
                           [(0.95, raw_aus_of(i, 30)), (0.30, np.full(17, 5.0))])
    examples = inventory.load_examples(config_for(root))
    assert examples.data_format == "openface"
    expected_test = sorted(i for i in ids if int(hashlib.md5(i.encode()).hexdigest(), 16) % 100 < 10)
    assert sorted(examples.test.ids) == expected_test and len(examples.train) == 30 - len(expected_test)
    for example_id, aus in zip(examples.train.ids, examples.train.aus):
        np.testing.assert_allclose(aus, raw_aus_of(ids.index(example_id), 30).round(2) / 5, atol=1e-6)
    assert "MD5" in examples.summary.split_rule


def test_layout_errors_name_the_path_and_how_to_make_one(tmp_path):
    with pytest.raises(inventory.DatasetNotFoundError, match="make_synthetic_dataset.py") as error:
        inventory.load_examples(config_for(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="cannot tell the layout"):
        inventory.load_examples(config_for(tmp_path / "empty"))
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "aus_openface.pkl").write_bytes(pickle.dumps({}))
    with pytest.raises(inventory.DatasetNotFoundError, match="imgs"):
        inventory.load_examples(config_for(no_images))
    no_pickle = tmp_path / "no_pickle"
    (no_pickle / "imgs").mkdir(parents=True)
    with pytest.raises(inventory.DatasetNotFoundError, match="aus_openface.pkl"):
        inventory.load_examples(config_for(no_pickle, data_format="ganimation"))


def test_no_usable_example_names_data_dir(tmp_path):
    root = tmp_path / "all_bad"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "a.jpg").write_bytes(b"")
    (root / "aus_openface.pkl").write_bytes(pickle.dumps({"a": np.ones(17)}))
    with pytest.raises(inventory.EmptyDatasetError, match="no usable training example") as error:
        inventory.load_examples(config_for(root))
    assert str(root) in str(error.value) and "empty file" in str(error.value)


# === Bad data ===


def test_bad_examples_are_skipped_counted_and_named(tmp_path):
    root = tmp_path / "mixed"
    make_ganimation_dir(root, num_train=10, num_test=2)
    good = (root / "imgs" / "face_000.jpg").read_bytes()
    table = pickle.loads((root / "aus_openface.pkl").read_bytes())
    bad = {
        "corrupt": (b"\x00garbage that is no image" * 10, np.ones(17)),
        "truncated": (good[: len(good) // 2], np.ones(17)),
        "empty": (b"", np.ones(17)),
        "unlabelled": (good, None),
        "nan_aus": (good, [np.nan] + [1.0] * 16),
        "short_aus": (good, np.ones(16)),
        "negative_aus": (good, [-1.0] + [1.0] * 16),
        "too_big_aus": (good, [6.0] + [1.0] * 16),
        "no_image": (None, np.ones(17)),
    }
    for name, (image_bytes, aus) in bad.items():
        if image_bytes is not None:
            (root / "imgs" / f"{name}.jpg").write_bytes(image_bytes)
        if aus is not None:
            table[name] = aus
    half_image(24, 0, 255).save(root / "imgs" / "truncated_png.png")
    png = (root / "imgs" / "truncated_png.png").read_bytes()
    (root / "imgs" / "truncated_png.png").write_bytes(png[: len(png) - 30])
    table["truncated_png"] = np.ones(17)
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=2))
    with open(root / "train_ids.csv", "a") as file:
        file.write("\n".join([*bad, "truncated_png"]) + "\n")

    examples = inventory.load_examples(config_for(root))
    summary = examples.summary
    assert summary.usable == {"train": 10, "test": 2}
    assert summary.skipped_counts() == {
        image_files.NOT_AN_IMAGE: 1, image_files.CORRUPT_IMAGE: 2, image_files.EMPTY_FILE: 1, inventory.NO_AUS: 1,
        annotations.NON_FINITE_AUS: 1, annotations.WRONG_AU_COUNT: 1, annotations.AUS_OUT_OF_RANGE: 2,
        image_files.MISSING_IMAGE: 1}
    assert summary.skipped[image_files.CORRUPT_IMAGE] == ("truncated", "truncated_png")
    text = str(summary)
    assert "skipped: 10" in text and "truncated or corrupt image: 2 (truncated, truncated_png)" in text
    element = next(iter(pipeline.make_training_dataset(config_for(root), examples=examples)))
    assert element["real_image"].shape == (4, 2, 16, 16, 3)


# === Fuzzed data: what is usable, what is skipped, and that nothing usable is lost ===


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def claimed_size_png(width: int, height: int) -> bytes:
    """A valid-looking 8-bit grayscale PNG whose header claims width x height but holds ~1 KB of rows."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


# Usable whatever the extension says, as long as TensorFlow's decoder reads them as JPEG or PNG.
GOOD_FUZZ = {
    "gray_jpeg": lambda face: (_encoded(face.convert("L"), "JPEG"), ".jpg"),
    "gray_png": lambda face: (_encoded(face.convert("L"), "PNG"), ".png"),
    "cmyk_jpeg": lambda face: (_encoded(face.convert("CMYK"), "JPEG", quality=95), ".jpg"),
    "palette_png": lambda face: (_encoded(face.convert("P"), "PNG"), ".png"),
    "rgba_png": lambda face: (_encoded(face.convert("RGBA"), "PNG"), ".png"),
    "gray16_png": lambda face: (_encoded(Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257), "PNG"),
                                ".png"),
    "rgb16_png": lambda face: (tf.io.encode_png(np.asarray(face, np.uint16) * 257).numpy(), ".png"),
    "png_named_jpg": lambda face: (_encoded(face, "PNG"), ".jpg"),
    "jpeg_named_png": lambda face: (_encoded(face, "JPEG"), ".png"),
    "progressive_jpeg": lambda face: (_encoded(face, "JPEG", progressive=True), ".jpeg"),
}
# name -> (file bytes or None for no file, extension, AU vector or None for no AUs, expected reason).
BAD_FUZZ = {
    "zero_bytes": (lambda face: b"", ".jpg", None, image_files.EMPTY_FILE),
    "truncated_jpeg": (lambda face: _encoded(face, "JPEG")[:300], ".jpg", None, image_files.CORRUPT_IMAGE),
    "truncated_png": (lambda face: _encoded(face, "PNG")[:-30], ".png", None, image_files.CORRUPT_IMAGE),
    "text_named_jpg": (lambda face: b"id,au01\nface,1.0\n" * 20, ".jpg", None, image_files.NOT_AN_IMAGE),
    "gif_named_jpg": (lambda face: _encoded(face, "GIF"), ".jpg", None, image_files.UNSUPPORTED_IMAGE_FORMAT),
    "bmp_named_png": (lambda face: _encoded(face, "BMP"), ".png", None, image_files.UNSUPPORTED_IMAGE_FORMAT),
    "bomb_30000_px": (lambda face: claimed_size_png(30000, 30000), ".png", None, image_files.TOO_MANY_PIXELS),
    "bomb_6000_px": (lambda face: claimed_size_png(6000, 6000), ".png", None, image_files.TOO_MANY_PIXELS),
    "aus_missing": (None, ".jpg", "absent", inventory.NO_AUS),
    "aus_nan": (None, ".jpg", [np.nan] + [1.0] * 16, annotations.NON_FINITE_AUS),
    "aus_inf": (None, ".jpg", [np.inf] + [1.0] * 16, annotations.NON_FINITE_AUS),
    "aus_negative": (None, ".jpg", [-0.5] + [1.0] * 16, annotations.AUS_OUT_OF_RANGE),
    "aus_above_5": (None, ".jpg", [5.5] + [1.0] * 16, annotations.AUS_OUT_OF_RANGE),
    "aus_16": (None, ".jpg", [1.0] * 16, annotations.WRONG_AU_COUNT),
    "aus_18": (None, ".jpg", [1.0] * 18, annotations.WRONG_AU_COUNT),
    "aus_text": (None, ".jpg", "not numbers", annotations.WRONG_AU_COUNT),
    "image_missing": (None, None, None, image_files.MISSING_IMAGE),
}


def add_fuzzed_examples(root, face: Image.Image) -> tuple[list[str], dict[str, int]]:
    """Adds GOOD_FUZZ and BAD_FUZZ examples (made from the RGB `face`) to the train split of layout (a).

    Returns:
        (ids of the good examples, expected skip count per reason).
    """
    table = pickle.loads((root / "aus_openface.pkl").read_bytes())
    good_aus = [0.5] * 17
    for name, make in GOOD_FUZZ.items():
        encoded, extension = make(face)
        (root / "imgs" / f"{name}{extension}").write_bytes(encoded)
        table[name] = good_aus
    expected: dict[str, int] = {}
    for name, (make, extension, aus, reason) in BAD_FUZZ.items():
        encoded = make(face) if make else (_encoded(face, "JPEG") if extension else None)
        if encoded is not None:
            (root / "imgs" / f"{name}{extension}").write_bytes(encoded)
        if aus != "absent":
            table[name] = good_aus if aus is None else aus
        expected[reason] = expected.get(reason, 0) + 1
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=2))
    with open(root / "train_ids.csv", "a") as file:
        file.write("\n".join([*GOOD_FUZZ, *BAD_FUZZ]) + "\n")
    return list(GOOD_FUZZ), expected


def test_fuzzed_data_every_bad_item_counted_by_kind_and_no_good_example_lost(tmp_path):
    root = tmp_path / "fuzzed"
    make_ganimation_dir(root, num_train=10, num_test=2)
    good, expected = add_fuzzed_examples(root, half_image(24, (200, 120, 60), (40, 90, 160)))
    config = config_for(root, batch_size=2, n_critic=1)
    examples = inventory.load_examples(config)
    assert examples.summary.skipped_counts() == expected
    assert set(examples.summary.skipped[image_files.TOO_MANY_PIXELS]) == {"bomb_30000_px", "bomb_6000_px"}
    assert examples.summary.usable == {"train": 10 + len(good), "test": 2}
    assert set(good) <= set(examples.train.ids)
    # Every usable example decodes in TensorFlow too (ignore_errors would drop and shorten it).
    decoded = list(pipeline.make_eval_dataset(config, "train", examples=examples, batch_size=64))
    images = np.concatenate([batch["real_image"].numpy() for batch in decoded])
    assert len(images) == len(examples.train) and np.isfinite(images).all()
    by_id = dict(zip(examples.train.ids, images))
    # Left half (200, 120, 60): the CMYK JPEG and the 16-bit PNGs keep the colour (or its luma).
    np.testing.assert_allclose(by_id["rgb16_png"][8, 2], np.array([200, 120, 60]) / 127.5 - 1, atol=0.02)
    np.testing.assert_allclose(by_id["cmyk_jpeg"][8, 2], np.array([200, 120, 60]) / 127.5 - 1, atol=0.1)
    assert abs(by_id["gray16_png"][8, 2, 0] - by_id["gray_png"][8, 2, 0]) < 0.02
    # A training epoch holds each usable example once.
    stream = pipeline.make_training_dataset(config_for(root, batch_size=1, n_critic=1, horizontal_flip=False),
                                        examples=examples)
    epoch = np.concatenate([e["real_image"].numpy()[:, 0] for e in stream.take(len(examples.train))])
    assert len({image.tobytes() for image in epoch}) == len({image.tobytes() for image in images})


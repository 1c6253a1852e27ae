r"""Measures the synthetic face renderer and draws a contact sheet to look at (a benchmark, not a test).

    python scripts/benchmarks/synthetic_faces.py --image_size 128 --num_images 300 \
        --contact_sheet /tmp/synthetic_sheet.png

prints the CPU milliseconds per face for rendering and for PNG encoding in this process (the dataset
script runs one such process per core), and writes a sheet of 8 identities x (neutral, happy,
surprise, sad, AU26 jaw drop, AU45 blink, anger, disgust). The whole-dataset figure comes from the real
script: `time python scripts/make_synthetic_dataset.py --out /tmp/syn --num_images 10000 --image_size 128`.
"""

import io
import time

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import numpy as np
from absl import flags
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.synthetic import renderer, synthetic_dataset
from tf_ganimation.synthetic.identity import sample_identity

_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Image side in pixels.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 300, "Faces to render for the timing.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed for identities and AUs.")
_CONTACT_SHEET = flags.DEFINE_string("contact_sheet", "", "If set, write a contact sheet PNG here.")

SHEET_EXPRESSIONS = ("neutral", "happy", "surprise", "sad", "AU26=1", "AU45=1", "anger", "disgust")


def contact_sheet(size: int, seed: int, rows: int = 8) -> np.ndarray:
    """uint8 [rows * size, 8 * size, 3]: one identity per row, SHEET_EXPRESSIONS left to right."""
    rng = np.random.default_rng(seed)
    identities = [sample_identity(rng) for _ in range(rows)]
    expressions = [action_units.parse_expression(text) for text in SHEET_EXPRESSIONS]
    return np.concatenate([np.concatenate([renderer.render_face(identity, aus, size) for aus in expressions], axis=1)
                           for identity in identities], axis=0)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    rng = np.random.default_rng(_SEED.value)
    faces = [(sample_identity(rng), synthetic_dataset.sample_aus(rng)) for _ in range(_NUM_IMAGES.value)]
    start = time.process_time()
    images = [renderer.render_face(identity, aus, _IMAGE_SIZE.value) for identity, aus in faces]
    rendered = time.process_time()
    sizes = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)  # as make_dataset does
        sizes.append(buffer.tell())
    encoded = time.process_time()
    count = len(faces)
    print(f"{_IMAGE_SIZE.value} px: render {1000 * (rendered - start) / count:.2f} ms, PNG encode "
          f"{1000 * (encoded - rendered) / count:.2f} ms CPU per face; {np.mean(sizes) / 1024:.1f} KiB per PNG")
    if _CONTACT_SHEET.value:
        Image.fromarray(contact_sheet(_IMAGE_SIZE.value, _SEED.value)).save(_CONTACT_SHEET.value)
        print(f"contact sheet ({', '.join(SHEET_EXPRESSIONS)}) written to {_CONTACT_SHEET.value}")


if __name__ == "__main__":
    cli.run(main)

"""Exports the XLA train_step as a step bundle that runs without TensorFlow (scripts/step_bundle.py).

    python scripts/export_step.py --out=build/step_bundle     # the GPU check: 128 px, paper networks
    bash build/step_bundle/device_check.sh                                # on the GPU machine (numpy, jax, torch)
    python scripts/export_step.py --out=/tmp/tiny_bundle --tiny  # 32 px tiny networks, for CPUs and tests
    python3.12 /tmp/tiny_bundle/run_step.py /tmp/tiny_bundle/32px_batch2_float32

One folder per setting, --batch_sizes x --precisions, each with the HLO of one train_step and of a
--steps_per_execution loop and their spec.json; the bundle's root holds run_step.py (numpy + jax only),
pytorch_reference.py (torch only), device_check.sh and its rows (device_check.tsv). The networks,
image size and n_critic are the training flags (tf_ganimation/flags.py), with the paper's defaults;
--steps_per_execution 0 is what training uses on the target (8 on a GPU). With the paper's
networks the bundle of four settings is about 2 MB; the weights are drawn on the device, not carried.
Results go in BENCHMARKS.md ("XLA train_step on a GPU").
"""

import dataclasses
import json
import pathlib
import shutil
import sys
import time

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import step_bundle  # scripts/step_bundle.py, beside this script
import throughput  # scripts/throughput.py, likewise
from absl import flags

from tf_ganimation import flags as training_flags
from tf_ganimation.core import atomic
from tf_ganimation.core.config import Config, DataConfig, RunConfig
from tf_ganimation.training import strategy

flags.DEFINE_string("out", None, "The bundle folder (created; settings already there are replaced).")
flags.DEFINE_list("batch_sizes", ["25", "200"], "Batch sizes, one bundle each (the first is the headline).")
flags.DEFINE_list("precisions", ["mixed_bfloat16", "float32"], "Precisions: float32 and/or mixed_bfloat16.")
flags.DEFINE_enum("target", "gpu", step_bundle.TARGETS, "The device whose layers the step is built with.")
flags.DEFINE_bool("tiny", False, "32-px tiny networks, n_critic 2, loops of 2 steps, batches 2 and 4 unless "
                  "--batch_sizes is given: for CPUs and tests (overrides the network and loop flags).")
FLAGS = flags.FLAGS
SCRIPTS = pathlib.Path(__file__).resolve().parent
# device_check.sh's cap per row (seconds), by kind and whether the batch is the first (small) one: what
# an XLA compile of the paper-size step (30-60 s), the timed calls and PyTorch's start-up take on one GPU.
ROW_CAPS = {("jax", True): 100, ("jax", False): 120, ("torch", True): 60, ("torch", False): 90,
            ("torch_compile", True): 120}
TINY_ROW_CAP = 150


def settings_from_flags() -> list[step_bundle.StepSetting]:
    """The bundle's settings, most important first: precisions in --precisions order within each batch."""
    config = training_flags.build_config()
    if FLAGS.tiny:
        model, n_critic, loop = throughput.NETWORKS["tiny"], 2, 2
    else:
        model, n_critic = config.model, config.data.n_critic
        loop = config.run.steps_per_execution or strategy.AUTO_STEPS_PER_EXECUTION[
            "accelerator" if FLAGS.target == "gpu" else "cpu"]
    batches = [2, 4] if FLAGS.tiny and not FLAGS["batch_sizes"].present else [int(b) for b in FLAGS.batch_sizes]
    for batch in batches:
        if batch < 1:
            raise ValueError(f"--batch_sizes holds {batch}: expected integers >= 1")
    settings = []
    for batch in batches:
        for precision in FLAGS.precisions:
            run_config = Config(model=model, data=DataConfig(image_size=model.image_size, batch_size=batch,
                                                             n_critic=n_critic), run=RunConfig(seed=config.run.seed))
            settings.append(step_bundle.StepSetting(run_config, precision, FLAGS.target, loop))
    return settings


def device_check_rows(settings: list[step_bundle.StepSetting]) -> list[tuple]:
    """device_check.tsv's rows: per batch, each precision's JAX row then its PyTorch row; last, torch.compile
    at the first batch. (kind, setting, batch, precision, cap seconds, pytorch_reference.py's size flags)."""
    first_batch = settings[0].config.data.batch_size
    rows, compiled = [], []
    for setting in settings:
        data = setting.config.data
        precision = "bfloat16" if setting.precision == "mixed_bfloat16" else "float32"
        small = data.batch_size == first_batch
        for kind in ("jax", "torch") + (("torch_compile",) if small else ()):
            cap = TINY_ROW_CAP if FLAGS.tiny else ROW_CAPS[(kind, small)]
            model = setting.config.model
            size_flags = " ".join(f"--{name}={getattr(model, name)}" for name in (
                "image_size", "generator_filters", "generator_residual_blocks", "critic_filters", "critic_layers"))
            row = (kind, setting.name, data.batch_size, precision, cap, f"{size_flags} --n_critic={data.n_critic}")
            (compiled if kind == "torch_compile" else rows).append(row)
    return rows + compiled


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    if not FLAGS.out:
        raise cli.UserError("--out is required: the folder the bundle is written to")
    root = pathlib.Path(FLAGS.out)
    settings = settings_from_flags()
    exported = []
    for setting in settings:
        started = time.monotonic()
        spec = step_bundle.export(setting, root)
        sizes = {name: (root / setting.name / program["file"]).stat().st_size
                 for name, program in spec["programs"].items()}
        exported.append({"setting": setting.name, "seconds": round(time.monotonic() - started, 1),
                         "gzipped_bytes": sizes, "state_parameters": sum(
                             entry["kind"] == "state" for entry in spec["programs"]["step"]["parameters"])})
        print(json.dumps(exported[-1]), file=sys.stderr, flush=True)
    for source in (SCRIPTS / "benchmarks" / "pytorch_reference.py", SCRIPTS / "device_check.sh"):
        atomic.write_with(root / source.name, lambda path, source=source: shutil.copy(source, path))
    rows = ["\t".join(str(field) for field in row) for row in device_check_rows(settings)]
    atomic.write_text(root / "device_check.tsv", "# kind\tsetting\tbatch\tprecision\tcap_s\tsize_flags\n"
                      + "\n".join(rows) + "\n")
    total = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    print(json.dumps({"bundle": str(root), "bytes": total, "settings": exported,
                      "networks": dataclasses.asdict(settings[0].config.model)}))


if __name__ == "__main__":
    cli.run(main)

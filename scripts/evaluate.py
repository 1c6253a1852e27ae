"""Evaluates a trained run: metrics.json and an evaluation sheet (AU sweeps, attention and colour maps).

    python scripts/evaluate.py --workdir runs/quickstart
    python scripts/evaluate.py --workdir RUN --data_dir OTHER_DATA --out_dir RUN/eval_other
    python scripts/evaluate.py --workdir runs/quickstart --checkpoint=latest   # while it trains
    python scripts/evaluate.py --workdir runs/quickstart --video   # reenactment of a synthetic clip (needs PyAV)
    python scripts/evaluate.py --workdir runs/quickstart --readme_excerpt=docs/quickstart_sheet.png   # after it

On synthetic data (scripts/make_synthetic_dataset.py, the quick start) edits are compared with the
true renderings of the same faces with the target AUs, next to the identity baseline (output = input).
"""

import json
import os

from absl import flags

from tf_ganimation import cli
from tf_ganimation.evaluation import evaluator

flags.DEFINE_string("workdir", None, "The training run to evaluate (its generator.weights.h5 and config.json).")
flags.DEFINE_string("data_dir", None, "Dataset to evaluate on; default: the run's own --data_dir.")
flags.DEFINE_string("out_dir", None, "Where metrics.json and sheet.png go; default: <workdir>/evaluation.")
flags.DEFINE_integer("num_targets", 4, "Target AU vectors per test face (synthetic ground truth).")
flags.DEFINE_integer("max_images", 64, "Test faces evaluated (the first ones of the split).")
flags.DEFINE_integer("seed", 0, "Seed of the target AU vectors.")
flags.DEFINE_string("checkpoint", None, "Evaluate a training checkpoint instead of the final weights: 'latest', "
                    "a name such as ckpt-400 in <workdir>/checkpoints, or a path; works while the run trains.")
flags.DEFINE_bool("video", False, "Score reenactment on a synthetic clip with known AUs instead: video_metrics.json, "
                  "driving.mp4, reenacted.mp4, reenactment.gif and reenactment_strip.png in <out_dir or "
                  "workdir/evaluation>/video.")
flags.DEFINE_string("readme_excerpt", None, "Instead of evaluating, cut the README's figure from the sheet.png and "
                    "truth_sheet.png an evaluation wrote in <out_dir or workdir/evaluation> and write it to this PNG: "
                    "rows AU12, AU12's true renderings, AU25 and AU26, columns as in the sheets.")
flags.DEFINE_integer("video_frames", 48, "Frames of the synthetic clip (--video), at 12 frames/s.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.workdir:
        raise cli.UserError("--workdir is required: the training run folder to evaluate")
    if FLAGS.video:
        print(json.dumps(_evaluate_video(), indent=2))
        return
    if FLAGS.readme_excerpt:
        evaluation_dir = FLAGS.out_dir or os.path.join(FLAGS.workdir, "evaluation")
        excerpt = evaluator.write_sheet_excerpt(evaluation_dir, FLAGS.readme_excerpt)
        print(f"{FLAGS.readme_excerpt}: {excerpt.shape[1]} x {excerpt.shape[0]} px, "
              f"{os.path.getsize(FLAGS.readme_excerpt):,} bytes, from {evaluation_dir}")
        return
    metrics = evaluator.evaluate_run(FLAGS.workdir, FLAGS.out_dir, FLAGS.data_dir, FLAGS.num_targets,
                                      FLAGS.max_images, FLAGS.seed, FLAGS.checkpoint)
    print(json.dumps(metrics, indent=2))


def _evaluate_video() -> dict:
    import os

    from PIL import Image

    from tf_ganimation.core import atomic
    from tf_ganimation.editing import video_evaluation
    from tf_ganimation.export.backends import load_edit_model
    from tf_ganimation.faces import detection

    out = FLAGS.out_dir or os.path.join(FLAGS.workdir, "evaluation", "video")
    config = video_evaluation.ClipConfig(num_frames=FLAGS.video_frames, seed=FLAGS.seed)
    metrics = video_evaluation.evaluate_reenactment(load_edit_model(FLAGS.workdir), detection.FaceDetector(), out,
                                                    config)
    strip = metrics.pop("strip")
    atomic.write_with(os.path.join(out, "reenactment_strip.png"),
                      lambda temporary: Image.fromarray(strip).save(temporary, format="PNG"))
    for framing in ("aligned_crop", "whole_frame"):  # in video_metrics.json; too long for the terminal
        metrics[framing]["reenactment_l1"].pop("per_frame")
        metrics[framing]["au_estimation"]["raw"].pop("per_au")
        metrics[framing]["au_estimation"]["constant_baseline"].pop("per_au")
    return metrics


if __name__ == "__main__":
    cli.run(main)

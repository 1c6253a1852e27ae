r"""Edits or animates the faces in a photo: flags -> edit_job.EditJob -> edit_job.run(job).

    python scripts/animate.py --model runs/quickstart --image photo.jpg --expression happy --out happy.png
    python scripts/animate.py --model models/ganimation/1 --image photo.jpg --aus AU12=1,AU06=0.8 --out smile.jpg
    python scripts/animate.py --model ganimation_fp16.tflite --image photo.jpg \
        --expression neutral,happy,surprise --frames 36 --gif face.gif --sheet sheet.png
    python scripts/animate.py --list          # the AUs and the expression presets

Video (pip install -r requirements-video.txt):
    python scripts/animate.py --model runs/quickstart --video in.mp4 --curve 0s:neutral,1.5s:happy,3s:surprise \
        --out out.mp4
    python scripts/animate.py --model runs/quickstart --video in.mp4 --curve track.csv --out out.mp4
    python scripts/animate.py --model runs/quickstart --image photo.jpg --driving_video drive.mp4 --out out.mp4 \
        --au_track_out drive_aus.csv

--model is a training run folder, a SavedModel version folder (or its export base: the highest version)
or a .tflite file. Prints a JSON summary (faces found, start AUs, files written). A photo without a
face exits with status 2 and suggests --whole_image; other user mistakes exit with status 2 too.
"""

import json

from absl import flags

from tf_ganimation import cli
from tf_ganimation.core import action_units
from tf_ganimation.editing import edit_job, editor, video_edit, video_io, video_job, video_writer
from tf_ganimation.faces import detection

flags.DEFINE_string("model", None, "A training run folder, a SavedModel version folder or a .tflite file.")
flags.DEFINE_string("image", None, "The photo to edit (JPEG, PNG or WebP).")
flags.DEFINE_string("expression", "", "A preset (happy, sad, surprise, fear, anger, disgust, contempt, "
                    "neutral), a mix (happy:0.5+surprise:0.5) or a sequence for --gif (neutral,happy,surprise).")
flags.DEFINE_string("aus", "", "Explicit AU intensities in [0, 1], e.g. AU12=1,AU06=0.8 (others 0).")
flags.DEFINE_string("start", "", "Start expression of --gif/--sheet; default: the face's current AUs (the "
                    "critic's estimate for a run folder or a SavedModel exported with it, neutral otherwise).")
flags.DEFINE_string("out", "", "Write the edited photo here (.jpg, .png or .webp).")
flags.DEFINE_string("gif", "", "Write an animation here (.gif or .webp) from the start AUs to the expression(s).")
flags.DEFINE_string("sheet", "", "Write a sheet here: attention and colour maps and an AU sweep of the largest face.")
flags.DEFINE_integer("frames", 24, "Frames in the --gif animation.")
flags.DEFINE_float("fps", 12.0, "Frames per second of the --gif animation.")
flags.DEFINE_integer("animation_max_side", 512, "Downscale --gif frames to this longer side (0: full size).")
flags.DEFINE_enum("faces", "all", list(detection.FACE_CHOICES), "Edit all faces or only the largest.")
flags.DEFINE_bool("whole_image", False, "Edit the whole photo as one face (when no face is detected).")
flags.DEFINE_bool("list", False, "Print the AUs and expression presets and exit.")
# Video
flags.DEFINE_string("video", None, "A clip (.mp4, .mov, .mkv) whose faces are edited; --out is then a video.")
flags.DEFINE_string("driving_video", None, "A clip whose largest face's expressions (the critic's AU estimates) drive "
                    "--image or the faces of --video.")
flags.DEFINE_string("curve", "", "Target AUs over time: keyframes 0s:neutral,1.5s:happy,3s:surprise (eased between), "
                    "or an AU track .csv (timestamp, AU01_r..AU45_r on OpenFace's 0..5 scale).")
flags.DEFINE_string("au_track_out", "", "Write the AUs estimated on --driving_video here (.csv, OpenFace's columns).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --out video.")
flags.DEFINE_integer("batch_size", 8, "Video frames edited per model call.")
flags.DEFINE_integer("detect_every", 5, "Detect faces on every k-th frame (and the last); in between, the "
                     "interpolated faces are checked with MTCNN's last network and the frames are detected when a "
                     "check fails. 1 detects on every frame.")
flags.DEFINE_integer("detection_side", 640, "Video frames are scaled to this longer side for face detection.")
flags.DEFINE_float("smoothing_frames", 2.0, "Smoothing of face positions over time (sigma, frames; 0: none).")
flags.DEFINE_float("au_smoothing_s", 0.08, "Smoothing of the driving AU track over time (sigma, seconds).")
flags.DEFINE_integer("max_video_pixels", video_io.MAX_PIXELS, "Refuse clips with larger frames (width x height).")
flags.DEFINE_integer("crf", 18, "H.264 quality of the output video: 0 lossless, 18 visually lossless, 23 default.")
flags.DEFINE_float("video_fps", 25.0, "Frame rate of a video made from --image and --curve.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --help)")
    if FLAGS.list:
        print(action_units.describe_vocabulary())
        return
    if FLAGS.video or FLAGS.driving_video:
        print(json.dumps(video_job.run(_video_job()), indent=2))
        return
    for name in ("model", "image"):
        if not getattr(FLAGS, name):
            raise cli.UserError(f"--{name} is required (see --help)")
    job = edit_job.EditJob(
        model=FLAGS.model, image=FLAGS.image, expression=FLAGS.expression, aus=FLAGS.aus, start=FLAGS.start,
        out=FLAGS.out, gif=FLAGS.gif, sheet=FLAGS.sheet, frames=FLAGS.frames, fps=FLAGS.fps,
        animation_max_side=FLAGS.animation_max_side,
        editor=editor.EditorConfig(faces=FLAGS.faces, whole_image=FLAGS.whole_image))
    print(json.dumps(edit_job.run(job), indent=2))


def _video_job() -> video_job.VideoJob:
    if not FLAGS.model:
        raise cli.UserError("--model is required (see --help)")
    photo_only = [name for name in ("gif", "sheet", "start") if getattr(FLAGS, name)]
    photo_only += ["whole_image"] if FLAGS.whole_image else []
    if photo_only:
        raise cli.UserError(f"{', '.join('--' + name for name in photo_only)} apply to photos, not to --video or "
                            "--driving_video (see --help)")
    edit = video_edit.VideoEditConfig(
        tracker=video_job.tracker_config(FLAGS.detect_every, FLAGS.smoothing_frames), faces=FLAGS.faces,
        batch_size=FLAGS.batch_size, detection_side=FLAGS.detection_side, max_pixels=FLAGS.max_video_pixels,
        encoder=video_writer.EncoderConfig(crf=FLAGS.crf))
    return video_job.VideoJob(
        model=FLAGS.model, out=FLAGS.out, video=FLAGS.video or "", image=FLAGS.image or "",
        driving_video=FLAGS.driving_video or "", expression=FLAGS.expression, aus=FLAGS.aus, curve=FLAGS.curve,
        au_track_out=FLAGS.au_track_out, overwrite=FLAGS.overwrite, fps=FLAGS.video_fps,
        au_smoothing_s=FLAGS.au_smoothing_s, edit=edit)


if __name__ == "__main__":
    cli.run(main)

"""Faces in photos: MTCNN detection, eye-level alignment into model-sized crops, and paste-back.

    detector = detection.FaceDetector()                # ~0.4 s to build: build once, reuse
    faces = detection.pick_faces(detector.detect(photo), "largest")
    crop, transform = alignment.crop_face(photo, faces[0], size=128)
    # the generator edits crop / 127.5 - 1 -> fake_image float [128, 128, 3] in [-1, 1] and
    # attention float [128, 128, 1] in [0, 1] (1 = keep the input pixel)
    photo = blending.paste_back(photo, fake_image, transform, attention=attention)

All coordinates are in pixels of the full-resolution photo. Imports run one way: blending ->
alignment -> detection.
"""

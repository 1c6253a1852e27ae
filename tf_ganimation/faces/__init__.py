"""Faces in photos: MTCNN detection, eye-level alignment into model-sized crops, and paste-back."""

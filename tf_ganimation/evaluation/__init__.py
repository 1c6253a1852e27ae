"""Scores for a trained generator: paired metrics against true renderings of synthetic faces,
self-consistency metrics on any data, the in-training probe, and the evaluation sheet."""

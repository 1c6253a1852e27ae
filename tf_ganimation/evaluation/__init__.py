"""Scores for a trained generator: paired metrics against true renderings of synthetic faces
(synthetic_edits), self-consistency metrics on any data (metrics), the in-training probe (probe),
the evaluation sheet (sheet), and the evaluation of a run folder (evaluator)."""

"""A training run's folder: its layout and its config (run_folder), and loading its networks back, final
weights or any checkpoint (loading), for every stage that reads a run."""

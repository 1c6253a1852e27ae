"""A training run's folder: its layout, its config, and loading its networks back (final weights
or any checkpoint), for every stage that reads a run."""

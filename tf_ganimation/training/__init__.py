"""`trainer.train(config, workdir)`: the step loop over a distribution strategy (strategy), the run's length
(schedule), checkpoints that survive a kill (checkpoints), monitoring (monitor) and faults (faults)."""

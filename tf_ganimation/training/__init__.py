"""`train(config, workdir)`: distribution, the step loop, checkpoints, monitoring and faults."""

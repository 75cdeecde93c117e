"""Training a compiled network: the trainer and its run state, setup, evaluation, metrics,
events, interrupts, checkpoints, run folders and atomic files."""

"""What happens to a checkpoint after training: the task registry, checkpoint loading,
evaluations written to the evals table, and the "not yet" ideas registry."""

"""Learning from operation: stored predictions, agents' feedback, the model registry with
shadow evaluation, and the drift watch."""

"""Learning: the policy network, checkpoints, rollouts, evaluation, warm starts and training."""

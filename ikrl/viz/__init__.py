"""Pictures: the arm as a stick figure, rollouts as GIFs, training curves (matplotlib)."""

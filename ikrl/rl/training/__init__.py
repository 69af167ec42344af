"""Training policies on ikrl environments.

An *algorithm* is a class built as ``Algorithm(env, policy, *, seed, **hyperparameters)``
that trains ``policy`` (an :class:`ikrl.rl.policy.Policy`) in place, one call at a time:

* ``update() -> dict[str, float]``: one training iteration. The dict has at least
  ``"transitions"`` (environment steps this iteration consumed) and the algorithm's losses.
* ``state_dict() -> dict`` / ``load_state_dict(state)``: optimizer and schedule state, for
  resuming a run (plain data that :func:`torch.save` can store with ``weights_only``).
* ``set_progress(fraction: float)``: how far through the budget the run is (0 to 1), for
  schedules (learning rate, curriculum).

:mod:`ikrl.rl.training.run` drives an algorithm within a budget, logs, checkpoints and evaluates.
"""

"""Warm starts for the solver from a trained policy: the RL side of ``ikrl solve --checkpoint``.

The solver (:mod:`ikrl.solver`) knows nothing of policies; it takes a ``warm_start`` callable.
This module makes one from a checkpoint, and the CLI composes the two.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ikrl.kinematics.protocol import KinematicChain, into_limits
from ikrl.rl.checkpoint import Checkpoint, load_checkpoint
from ikrl.rl.goal.policy import GoalPolicy
from ikrl.rl.rollout import rollout_policy
from ikrl.util.checks import check_int

__all__ = ["policy_starts"]


def policy_starts(
    policy: Checkpoint | str | Path, chain: KinematicChain, targets: Tensor, q: Tensor, *, steps: int | None = None
) -> Tensor:
    """Starts for the solver from a trained policy: for a goal policy, the goal network's
    ``K`` heads of each target, nearest first (``[N, K, dof]``, no rollout; ``q`` is not
    used); for any other, the joint values ``[N, dof]`` after its rollout from ``q [N, dof]``
    towards ``targets``.

    ``policy`` is a checkpoint (or its file or run folder) trained for ``chain``'s robot;
    another robot, or changed kinematics, raise :class:`~ikrl.errors.CheckpointMismatchError`.
    The rollout (:func:`ikrl.rl.rollout.rollout_policy`) runs in the checkpoint's own
    environment for ``steps`` steps (default its ``max_steps``), without gradients. With
    :func:`ikrl.solve`: ``solve(chain, targets, warm_start=lambda q: policy_starts(run, chain, targets, q))``.
    """
    checkpoint = policy if isinstance(policy, Checkpoint) else load_checkpoint(policy)
    checkpoint.check_chain(chain)
    trained = checkpoint.shared_policy(chain.device, chain)
    if isinstance(trained, GoalPolicy):
        # A goal network's heads are seeds already: no rollout.
        return into_limits(chain, trained.ranked_heads(targets).to(chain.dtype))
    overrides = {} if steps is None else {"max_steps": check_int("solve", "policy_steps", steps, low=1)}
    env = checkpoint.make_env(batch_size=q.shape[0], device=chain.device, **overrides)
    final, _, _ = rollout_policy(env, trained, q.to(env.dtype), targets.to(env.dtype))
    return into_limits(chain, final["q"].to(chain.dtype))

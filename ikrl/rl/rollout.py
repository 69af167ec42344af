"""Rollouts of a trained policy from chosen states, without gradients: what evaluation,
warm starts and pictures run."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ikrl.rl.policy import act
from ikrl.util.metrics import TOLERANCES

__all__ = ["rollout_policy"]


@torch.no_grad()
def rollout_policy(env, policy: nn.Module, q: Tensor, target: Tensor, *, record: bool = False):
    """Run ``policy`` for ``env.max_steps`` steps from joint values ``q`` towards ``target``
    poses (one per arm of ``env``), without stopping early.

    Returns ``(final tensordict, first step within (5 mm, 2 deg) or -1, joint values per step
    [steps + 1, N, dof] if record else None)``.
    """
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    td = env.state_at(q, target)
    n = q.shape[0]
    first = torch.full((n,), -1, dtype=torch.int64, device=q.device)
    history = [td["q"]]
    for step in range(1, env.max_steps + 1):
        td["action"] = act(policy, td)
        td = env.step(td)["next"]
        hit = (td["position_error"].squeeze(-1) < pos_tol) & (td["rotation_error"].squeeze(-1) < rot_tol)
        first = torch.where((first < 0) & hit.to(first.device), torch.full_like(first, step), first)
        if record:
            history.append(td["q"])
    return td, first, (torch.stack(history) if record else None)

"""ikrl's own training algorithms: the goal network with a learned corrector (the default),
APG (back-propagation through rollouts) and TorchRL's SAC."""

from __future__ import annotations

from collections.abc import Callable

from ikrl.extend.components import Algorithm
from ikrl.extend.plugins import hookimpl
from ikrl.rl.training.apg import APG
from ikrl.rl.training.goal import GoalTraining
from ikrl.rl.training.sac import SAC

__all__ = ["ikrl_algorithms"]


@hookimpl
def ikrl_algorithms() -> dict[str, Callable[..., Algorithm]]:
    """ikrl's training algorithms, by name."""
    return {"goal": GoalTraining, "apg": APG, "sac": SAC}

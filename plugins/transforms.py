"""ikrl's own observation transforms: joint features (sincos, raw, normalize) and target
features (error, target).

Each transform turns a :class:`ikrl.components.State` into a block of features
``[N, size(chain)]`` (or its parts, a tuple for the environment to concatenate) in the
state's dtype and device, differentiably, and says in
``shows`` whether the block reveals the joint values or the target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ikrl.extend.components import JOINTS, TARGET, ObservationTransform, State
from ikrl.extend.plugins import hookimpl
from ikrl.kinematics.chain import Chain
from ikrl.kinematics.protocol import bounds

__all__ = ["Error", "Normalize", "Raw", "SinCos", "Target", "ikrl_transforms"]


class SinCos:
    """``[sin q, cos q]`` (``2 dof``): joint angles without the jump at +-pi (two blocks,
    concatenated by the environment)."""

    name = "sincos"
    shows = frozenset({JOINTS})

    def size(self, chain: Chain) -> int:
        return 2 * chain.dof

    def __call__(self, state: State) -> tuple[Tensor, Tensor]:
        if state.sin_cos is not None:  # the forward kinematics' own, the same numbers
            return state.sin_cos
        return torch.sin(state.q), torch.cos(state.q)

    def __repr__(self) -> str:
        return f"{self.name}()"


class Raw:
    """The joint values ``q`` as they are (``dof``), radians or metres."""

    name = "raw"
    shows = frozenset({JOINTS})

    def size(self, chain: Chain) -> int:
        return chain.dof

    def __call__(self, state: State) -> Tensor:
        return state.q

    def __repr__(self) -> str:
        return f"{self.name}()"


class Normalize:
    """Joint values scaled to ``[-1, 1]`` by their limits (``dof``); continuous joints ``q / pi``."""

    name = "normalize"
    shows = frozenset({JOINTS})

    def size(self, chain: Chain) -> int:
        return chain.dof

    def __call__(self, state: State) -> Tensor:
        q = state.q
        # A continuous joint's range is [-pi, pi], so the same formula gives q / pi.
        lower, upper = bounds(state.chain)
        middle = 0.5 * (lower + upper)
        half = 0.5 * (upper - lower)
        # A joint with lower == upper cannot move: map it to 0 rather than divide by 0.
        half = torch.where(half > 0, half, torch.ones_like(half))
        return (q - middle.to(q.device, q.dtype)) / half.to(q.device, q.dtype)

    def __repr__(self) -> str:
        return f"{self.name}()"


class Error:
    """The error twist ``log(tip^-1 target)`` in the tip frame (6): metres then radians."""

    name = "error"
    shows = frozenset({TARGET})
    zero_on_target = True

    def size(self, chain: Chain) -> int:
        return 6

    def __call__(self, state: State) -> Tensor:
        return state.error.twist

    def __repr__(self) -> str:
        return f"{self.name}()"


class Target:
    """The target pose in the base frame (9): position (metres), then the first two
    columns of its rotation matrix, the continuous 6-D representation (Zhou et al. 2019)."""

    name = "target"
    shows = frozenset({TARGET})

    def size(self, chain: Chain) -> int:
        return 9

    def __call__(self, state: State) -> tuple[Tensor, Tensor, Tensor]:
        target = state.target  # three column views, concatenated by the environment
        return target[:, :3, 3], target[:, :3, 0], target[:, :3, 1]

    def __repr__(self) -> str:
        return f"{self.name}()"


_TRANSFORMS = (SinCos, Raw, Normalize, Error, Target)


@hookimpl
def ikrl_transforms() -> dict[str, Callable[..., ObservationTransform]]:
    """ikrl's observation transforms, by name."""
    return {transform.name: transform for transform in _TRANSFORMS}

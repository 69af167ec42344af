"""What a reward shape, a sampler and an observation transform must provide.

These protocols are the contract between the environment and its parts, first-party and
third-party alike. A plugin's factory (see :mod:`ikrl.hookspecs`) is called with the
keyword parameters written in the spec string and returns an object satisfying one of
them. Everything is batched over the environment's ``N`` arms; tensors are on the
environment's device and in its dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from ikrl.chain import Chain
from ikrl.errors import BadParameterError

__all__ = [
    "JOINTS",
    "TARGET",
    "ObservationTransform",
    "PoseError",
    "RewardShape",
    "Sampler",
    "State",
    "check_device",
    "check_number",
    "is_finite_number",
]

#: What an observation transform's features can show: the joint values, the target.
JOINTS = "joints"
TARGET = "target"


class PoseError(NamedTuple):
    """How far the tip is from the target (see :mod:`ikrl.se3` for the conventions)."""

    twist: Tensor  #: [N, 6] ``log(tip^-1 target)``, in the tip frame, (v, w)
    position: Tensor  #: [N] distance between tip and target origins, metres
    rotation: Tensor  #: [N] angle between tip and target orientations, radians in [0, pi]


class State(NamedTuple):
    """What observation transforms see after a reset or a step."""

    chain: Chain
    q: Tensor  #: [N, dof] joint values (continuous joints in [-pi, pi))
    target: Tensor  #: [N, 4, 4] target pose in the base frame
    tip: Tensor  #: [N, 4, 4] tip pose in the base frame
    error: PoseError


@runtime_checkable
class RewardShape(Protocol):
    """Turns the error before and after a step into a reward."""

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        """Reward ``[N]`` for a step that took the error from ``before`` to ``after``.

        ``success`` is ``[N]`` bool: the tip is within tolerance after the step. Use
        differentiable operations where you can: policies may be trained by
        back-propagating through rewards.
        """
        ...


@runtime_checkable
class Sampler(Protocol):
    """Draws start and target joint values; targets become poses by forward kinematics,
    so every target is reachable."""

    def __call__(self, chain: Chain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(start, target)`` joint values ``[n, dof]`` each, within the chain's limits
        (continuous joints in ``[-pi, pi)``), on ``chain.device`` in ``chain.dtype``.

        Draw all randomness from ``generator`` so that seeded environments repeat.
        """
        ...


@runtime_checkable
class ObservationTransform(Protocol):
    """Adds a block of features to the policy's flat ``observation``."""

    #: What the features show, a subset of ``{JOINTS, TARGET}``. The environment adds the
    #: ``raw`` joint values or the ``target`` block when no transform of a spec shows them.
    shows: frozenset[str]

    def size(self, chain: Chain) -> int:
        """Number of features for this chain."""
        ...

    def __call__(self, state: State) -> Tensor:
        """Features ``[N, size(chain)]``."""
        ...


# ---------------------------------------------------------------------- parameter checks


def is_finite_number(value: object) -> bool:
    """An int or float that is finite. Not a bool: ``bonus=true`` is a mistake, not the number 1."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def check_number(
    component: str,
    name: str,
    value: object,
    *,
    accepted: str,
    low: float = -math.inf,
    low_open: bool = False,
    high: float = math.inf,
) -> float:
    """``value`` as a float if it is a finite number in the range, else a BadParameterError
    naming the component, the parameter, what is ``accepted`` and the value given.

    For factories: ``self.noise = check_number("near_target", "noise", noise, accepted="a number >= 0", low=0)``.
    """
    x = float(value) if is_finite_number(value) else math.nan  # type: ignore[arg-type]
    # NaN fails every comparison, so anything that is not a finite number is rejected.
    if not ((x > low if low_open else x >= low) and x <= high):
        raise BadParameterError(f"{component}: {name} must be {accepted}; got {value!r}")
    return x


def check_device(device: object) -> torch.device:
    """``device`` as a :class:`torch.device` that this machine has, else a BadParameterError
    saying what was wrong (not a device name, or a kind this torch build or machine lacks)."""
    try:
        resolved = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError):
        raise BadParameterError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from None
    if resolved.type == "cpu":
        return resolved
    module = getattr(torch, resolved.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise BadParameterError(f"device {device!r} is not available here (torch.{resolved.type}.is_available() is False); use 'cpu'")
    count = getattr(module, "device_count", None)
    if resolved.index is not None and count is not None and resolved.index >= count():
        raise BadParameterError(f"device {device!r} does not exist: this machine has {count()} {resolved.type} device(s)")
    return resolved


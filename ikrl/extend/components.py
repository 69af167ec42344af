"""What a reward shape, a sampler and an observation transform must provide.

These protocols are the contract between the environment and its parts, first-party and
third-party alike. A plugin's factory (see :mod:`ikrl.extend.hookspecs`) is called with the
keyword parameters written in the spec string and returns an object satisfying one of
them. Everything is batched over the environment's ``N`` arms; tensors are on the
environment's device and in its dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from ikrl.kinematics.protocol import KinematicChain

__all__ = [
    "Algorithm",
    "Features",
    "JOINTS",
    "TARGET",
    "ObservationTransform",
    "PoseError",
    "RewardShape",
    "Sampler",
    "State",
    "concatenated",
    "zero_on_target",
]

#: What an observation transform's features can show: the joint values, the target.
JOINTS = "joints"
TARGET = "target"

#: What an observation transform returns: its features ``[N, size]``, or their blocks in order
#: (a tuple of ``[N, k_i]``, ``sum k_i = size``) for the environment to concatenate.
Features = Tensor | tuple[Tensor, ...]


class PoseError(NamedTuple):
    """How far the tip is from the target (see :mod:`ikrl.kinematics.se3` for the conventions)."""

    twist: Tensor  #: [N, 6] ``log(tip^-1 target)``, in the tip frame, (v, w)
    position: Tensor  #: [N] distance between tip and target origins, metres
    rotation: Tensor  #: [N] angle between tip and target orientations, radians in [0, pi]


class State(NamedTuple):
    """What observation transforms see after a reset or a step."""

    chain: KinematicChain
    q: Tensor  #: [N, dof] joint values (continuous joints in [-pi, pi))
    target: Tensor  #: [N, 4, 4] target pose in the base frame
    tip: Tensor  #: [N, 4, 4] tip pose in the base frame
    error: PoseError
    #: ``(sin q, cos q)`` [N, dof] each when the forward kinematics computed them on the way
    #: (:meth:`ikrl.kinematics.chain.Chain.forward_kinematics_and_trig`), else None.
    sin_cos: tuple[Tensor, Tensor] | None = None


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

    def __call__(self, chain: KinematicChain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
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
    #: Optional: ``zero_on_target = True`` declares that every feature is zero exactly when the
    #: tip is on its target (the error twist is); a policy may anchor on such features
    #: (:func:`zero_on_target`).
    shows: frozenset[str]

    def size(self, chain: KinematicChain) -> int:
        """Number of features for this chain."""
        ...

    def __call__(self, state: State) -> Features:
        """Features ``[N, size(chain)]``, or their blocks in order: a tuple of ``[N, k_i]``
        with ``sum k_i = size(chain)``. The environment concatenates all transforms' blocks
        in one copy, so a transform made of parts (``sin q`` and ``cos q``) can hand them
        over rather than concatenate them itself (which would copy its features twice).
        """
        ...


def concatenated(features: Features) -> Tensor:
    """A transform's features as one tensor ``[N, size]``: a tuple of blocks concatenated
    along the last axis, a tensor as it is.

    Examples:
        >>> concatenated((torch.zeros(2, 1), torch.ones(2, 2)))
        tensor([[0., 1., 1.],
                [0., 1., 1.]])
    """
    return torch.cat(features, -1) if isinstance(features, tuple) else features


def zero_on_target(transform: ObservationTransform) -> bool:
    """Whether ``transform`` declares its features zero exactly on target (``zero_on_target``,
    an optional attribute, False when absent)."""
    declared = getattr(transform, "zero_on_target", False)
    if not isinstance(declared, bool):
        raise TypeError(f"{transform!r}.zero_on_target must be True or False; got {declared!r}")
    return declared


@runtime_checkable
class Algorithm(Protocol):
    """A training algorithm, built as ``factory(env, policy, *, seed, **hyperparameters)``: it
    trains ``policy`` in place on the environment ``env`` (an :class:`ikrl.IKEnv`), one call at
    a time. ``default_batch_size`` is the number of arms it wants when the user gives none.

    Optional members the training loop (:mod:`ikrl.rl.training.run`) calls when present:
    ``policy_for(env, *, hidden, seed, **hyperparameters)`` on the factory (the policy it
    trains; else an MLP), ``set_budget(cpu_seconds, steps)`` before the first update,
    ``finish()`` after the last, ``summary() -> dict`` for the evaluation's record.
    """

    default_batch_size: int

    def update(self) -> dict[str, float]:
        """One training iteration; at least ``"transitions"`` (environment steps consumed)."""
        ...

    def set_progress(self, fraction: float) -> None:
        """How far through the budget the run is (0 to 1), for schedules."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and schedule state for resuming (plain data ``torch.save`` can store)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

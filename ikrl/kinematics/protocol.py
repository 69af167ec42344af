"""What a kinematic chain must provide, and the joint-space functions every chain gets for free.

:class:`KinematicChain` is the contract between a robot and the rest of ikrl: the
environment, the solver, training, evaluation and checkpoints take any object that has
these members, whether it is ikrl's own :class:`~ikrl.kinematics.chain.Chain` (built from a
URDF), a DH table, an analytic arm, or a wrapper around another library. No subclassing is
needed. Limits handling is written once, here, over the protocol: :func:`bounds`,
:func:`into_limits`, :func:`random_joints`.

Conventions (:mod:`ikrl.kinematics.se3`): poses are 4x4 matrices of the tip frame in the
base frame, acting on column vectors; Jacobian rows are (linear velocity of the tip origin,
angular velocity), both in the base frame. Joint values are radians (metres for prismatic
joints).

Examples:
    >>> import torch, ikrl, ikrl_robots
    >>> from ikrl.kinematics.protocol import KinematicChain, into_limits
    >>> chain = ikrl.load_chain(ikrl_robots.info("dobot_cr5").urdf)
    >>> isinstance(chain, KinematicChain)
    True
    >>> into_limits(chain, torch.full((1, 6), 10.0)).tolist() == [chain.upper.tolist()]
    True
"""

from __future__ import annotations

import math
import weakref
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ikrl.errors import JointInputError
from ikrl.kinematics.se3 import wrap_angle

__all__ = ["KinematicChain", "bounds", "check_joints", "into_limits", "jacobian_error", "missing_members", "random_joints"]


@runtime_checkable
class KinematicChain(Protocol):
    """A serial chain of ``dof`` joints: batched, differentiable forward kinematics and Jacobians.

    Attributes:
        name: the robot's name (in messages and pictures).
        dof: number of joint values ``q``.
        joint_names: ``dof`` names, in the order ``q`` holds them.
        lower, upper: ``[dof]`` limits; ``-inf``/``inf`` for continuous joints.
        continuous: ``[dof]`` bool, the joints that wrap around instead of stopping.
        dtype, device: of every tensor the chain takes and returns.

    Pictures (:mod:`ikrl.viz`) also use ``skeleton(q) -> [..., points, 3]`` where a chain has
    one; a chain without it says so when asked for a picture.
    """

    name: str
    dof: int
    joint_names: tuple[str, ...]
    lower: Tensor
    upper: Tensor
    continuous: Tensor
    dtype: torch.dtype
    device: torch.device

    def forward_kinematics(self, q: Tensor) -> Tensor:
        """``q [..., dof] -> [..., 4, 4]``: the tip pose in the base frame."""
        ...

    def jacobian(self, q: Tensor) -> Tensor:
        """``q [..., dof] -> [..., 6, dof]``: rows (linear, angular), base frame."""
        ...

    def forward_kinematics_and_jacobian(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Both of the above, from one pass where the chain can."""
        ...

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> KinematicChain:
        """A copy on another device and/or dtype."""
        ...

    def fingerprint(self) -> str:
        """A short string that changes when the kinematics change (what a checkpoint checks):
        equal for the same robot on any device or dtype."""
        ...


def missing_members(obj: object) -> list[str]:
    """The members of :class:`KinematicChain` that ``obj`` lacks, in the protocol's order
    (empty when ``obj`` is a kinematic chain)."""
    members = [*KinematicChain.__annotations__]
    members += [name for name, value in vars(KinematicChain).items() if callable(value) and not name.startswith("_")]
    return [name for name in members if not hasattr(obj, name)]


def check_joints(chain: KinematicChain, q: object) -> Tensor:
    """``q`` itself if it is a tensor ``[..., dof]`` in the chain's dtype and on its device,
    else a :class:`~ikrl.errors.JointInputError` saying what to pass instead."""
    if not isinstance(q, Tensor):
        raise JointInputError(f"q must be a torch.Tensor of shape (..., {chain.dof}); got {type(q).__name__}")
    if q.dim() == 0 or q.shape[-1] != chain.dof:
        raise JointInputError(
            f"q must have shape (..., {chain.dof}) for chain {chain.name!r} "
            f"(joints {', '.join(chain.joint_names)}); got {tuple(q.shape)}"
        )
    if q.dtype != chain.dtype:
        raise JointInputError(
            f"q is {q.dtype} but chain {chain.name!r} is {chain.dtype}: pass q.to({chain.dtype}) "
            f"or use chain.to(dtype={q.dtype})"
        )
    if q.device != chain.device:
        raise JointInputError(
            f"q is on {q.device} but chain {chain.name!r} is on {chain.device}: pass "
            f"q.to({str(chain.device)!r}) or use chain.to(device={str(q.device)!r})"
        )
    return q


#: Whether a chain's ``continuous`` mask has any True, by the mask's id (a weak reference
#: confirms it is the same tensor, and drops the entry with it): ``into_limits`` runs at every
#: solver iteration, and ``bool(mask.any())`` would wait for a GPU each time.
_CONTINUOUS: dict[int, tuple[weakref.ref[Tensor], bool]] = {}


def _any_continuous(mask: Tensor) -> bool:
    key = id(mask)
    entry = _CONTINUOUS.get(key)
    if entry is None or entry[0]() is not mask:
        entry = (weakref.ref(mask, lambda _, key=key: _CONTINUOUS.pop(key, None)), bool(mask.any()))
        _CONTINUOUS[key] = entry
    return entry[1]


def bounds(chain: KinematicChain) -> tuple[Tensor, Tensor]:
    """``(low, high)``, ``[dof]`` each: where joint values live. The limits, and ``[-pi, pi]``
    for continuous joints (which :func:`into_limits` wraps into ``[-pi, pi)``)."""
    low = torch.where(chain.continuous, torch.full_like(chain.lower, -math.pi), chain.lower)
    high = torch.where(chain.continuous, torch.full_like(chain.upper, math.pi), chain.upper)
    return low, high


def into_limits(chain: KinematicChain, q: Tensor) -> Tensor:
    """``q[..., dof]`` moved inside the limits: bounded joints clamped, continuous joints
    wrapped into ``[-pi, pi)``. Differentiable (gradient 1 inside the limits)."""
    check_joints(chain, q)
    clamped = torch.clamp(q, min=chain.lower, max=chain.upper)  # continuous limits are +-inf
    if not _any_continuous(chain.continuous):
        return clamped
    return torch.where(chain.continuous, wrap_angle(q), clamped)


def random_joints(chain: KinematicChain, n: int, generator: torch.Generator) -> Tensor:
    """``[n, dof]`` joint values uniform within :func:`bounds` (continuous joints in
    ``[-pi, pi)``), drawn in float64 on the generator's device, so that a seed gives the same
    values for any dtype and device of the chain."""
    u = torch.rand(n, chain.dof, generator=generator, device=generator.device, dtype=torch.float64)
    low, high = (b.to(device=u.device, dtype=torch.float64) for b in bounds(chain))
    return into_limits(chain, (low + u * (high - low)).to(device=chain.device, dtype=chain.dtype))


def jacobian_error(chain: KinematicChain, q: Tensor, step: float = 1e-6) -> float:
    """The largest difference (metres per unit joint value) between the linear rows of the
    chain's Jacobian at ``q [dof]`` and central differences of its tip position, in float64:
    a self-check any chain can run.

    Examples:
        >>> import ikrl, ikrl_robots
        >>> jacobian_error(ikrl.load_chain(ikrl_robots.info("panda").urdf), torch.zeros(7)) < 1e-8
        True
    """
    exact = chain.to(dtype=torch.float64)
    q0 = q.detach().to(device=exact.device, dtype=torch.float64).reshape(chain.dof)
    columns = []
    for i in range(chain.dof):
        dq = torch.zeros_like(q0)
        dq[i] = step
        plus, minus = exact.forward_kinematics(q0 + dq), exact.forward_kinematics(q0 - dq)
        columns.append((plus[:3, 3] - minus[:3, 3]) / (2 * step))
    return float((torch.stack(columns, 1) - exact.jacobian(q0)[:3]).abs().max())

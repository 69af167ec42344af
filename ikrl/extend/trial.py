"""One trial draw and one trial step of a spec's components, before anything is trained.

A plugin's output is not taken on trust. :func:`trial` calls the sampler, every transform
and the reward once, on a few arms of the real chain, and checks what comes back against
the protocols of :mod:`ikrl.extend.components`: shapes, dtype, device, finite values, joint
values inside the limits, a transform's width equal to its ``size()``. It also checks that
the sampler repeats with one seed (and leaves torch's global random state alone), and finds
out whether the reward carries a gradient (what gradient-based training needs). A mistake
is a :class:`~ikrl.errors.PluginError` naming the component, its distribution and what was
expected, e.g. ``reward 'huber' (ikrl-mylab) returned shape (3, 1); a reward returns [N]``.

:class:`~ikrl.env.IKEnv` runs it when it is built; ``ikrl check`` prints its findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ikrl.errors import NotAPoseError, PluginError, closest
from ikrl.extend.components import (
    JOINTS,
    TARGET,
    ObservationTransform,
    PoseError,
    RewardShape,
    Sampler,
    State,
)
from ikrl.extend.guard import origin_of
from ikrl.kinematics.protocol import KinematicChain, bounds
from ikrl.kinematics.se3 import check_poses, error_and_distances

__all__ = ["TRIAL_ARMS", "Trial", "check_shows", "trial"]

#: Arms of the trial: more than one, so that ``[N]`` and ``[N, 1]`` and a transposed
#: ``[dof, N]`` cannot be mistaken for each other.
TRIAL_ARMS = 3
#: What ``shows`` may hold.
SHOWABLE = frozenset({JOINTS, TARGET})


@dataclass(frozen=True)
class Trial:
    """What the trial found out, beyond passing.

    ``reward_differentiable``: the reward depends on the pose errors through a gradient
    (non-zero at the trial point); gradient-based training (``apg``, ``goal``) needs it.
    """

    reward_differentiable: bool


def check_shows(transform: object, origin: str) -> frozenset[str]:
    """A transform's ``shows`` as a frozenset, checked: a set of ``"joints"`` and ``"target"``.

    >>> check_shows(type("T", (), {"shows": {"joint"}})(), "transform 't'")
    Traceback (most recent call last):
    ...
    ikrl.errors.PluginError: transform 't' declares shows = {'joint'}: 'joint' is not one of 'joints', 'target' (did you mean 'joints'?); shows is a set of those names
    """
    shows = getattr(transform, "shows", None)
    if not isinstance(shows, set | frozenset) or not all(isinstance(s, str) for s in shows):
        raise PluginError(
            f"{origin} declares shows = {shows!r}; shows is a set of 'joints' and 'target' "
            "(what the features reveal), e.g. frozenset({'joints'})"
        )
    for name in sorted(shows - SHOWABLE):
        hint = closest(name, SHOWABLE)
        raise PluginError(
            f"{origin} declares shows = {set(sorted(shows))!r}: {name!r} is not one of 'joints', 'target'"
            f"{f' (did you mean {hint!r}?)' if hint else ''}; shows is a set of those names"
        )
    return frozenset(shows)


def trial(
    chain: KinematicChain,
    reward: RewardShape,
    sampler: Sampler,
    transforms: Iterable[tuple[str, ObservationTransform]],
) -> Trial:
    """Run the trial (module docstring) on ``chain`` in its dtype and device; return its findings."""
    n = TRIAL_ARMS
    sampler_origin = origin_of(sampler, "sampler")
    start, target_q = _draw(chain, sampler, sampler_origin, seed=0)
    again = _draw(chain, sampler, sampler_origin, seed=0)
    if not (torch.equal(start, again[0]) and torch.equal(target_q, again[1])):
        raise PluginError(
            f"{sampler_origin} drew different joint values from two generators seeded alike; draw every "
            "random number from the generator argument (torch.rand(..., generator=generator)) so that seeded "
            "environments repeat"
        )

    tip = chain.forward_kinematics(start)
    target = chain.forward_kinematics(target_q)
    robot = f"robot {chain.name!r}"
    for name, poses in (("tip", tip), ("target", target)):
        _expect_tensor(robot, f"forward kinematics ({name})", poses, (n, 4, 4), chain)
        try:
            check_poses(poses, f"its forward kinematics [{{}}] of the trial {name}")
        except NotAPoseError as exc:
            raise PluginError(f"{robot}: {exc}") from None

    twist, position, rotation = error_and_distances(tip, target)
    state = State(chain, start, target, tip, PoseError(twist, position, rotation))
    for name, transform in transforms:
        origin = origin_of(transform, f"transform {name!r}")
        size = transform.size(chain)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PluginError(f"{origin}.size() returned {size!r}; it returns the number of features, an int >= 0")
        _expect_features(origin, transform(state), n, size, chain)

    return Trial(reward_differentiable=_try_reward(chain, reward, start, target))


def _draw(chain: KinematicChain, sampler: Sampler, origin: str, *, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator(device=chain.device).manual_seed(seed)
    global_state = torch.random.get_rng_state()
    drawn = sampler(chain, TRIAL_ARMS, generator)
    if not torch.equal(global_state, torch.random.get_rng_state()):
        torch.random.set_rng_state(global_state)
        raise PluginError(
            f"{origin} drew from torch's global random generator; draw every random number from the "
            "generator argument (torch.rand(..., generator=generator)) so that seeded environments repeat"
        )
    if not (isinstance(drawn, tuple | list) and len(drawn) == 2):
        raise PluginError(f"{origin} returned {type(drawn).__name__}; a sampler returns (start, target), two tensors [n, dof]")
    low, high = bounds(chain)
    for name, q in zip(("start", "target"), drawn, strict=True):
        _expect_tensor(origin, f"{name} joint values", q, (TRIAL_ARMS, chain.dof), chain, what=f"[n, dof] = [n, {chain.dof}]")
        outside = (q < low) | (q > high)
        if bool(outside.any()):
            arm, joint = (int(i) for i in torch.nonzero(outside)[0])
            raise PluginError(
                f"{origin} returned {name} joint values outside the limits: {chain.joint_names[joint]} = "
                f"{float(q[arm, joint]):.6g}, limits [{float(low[joint]):.6g}, {float(high[joint]):.6g}] "
                "(continuous joints in [-pi, pi)); samplers return values within the limits "
                "(ikrl.kinematics.protocol.into_limits moves them there)"
            )
    return drawn[0], drawn[1]


def _try_reward(chain: KinematicChain, reward: RewardShape, start: Tensor, target: Tensor) -> bool:
    """Check one reward call; whether its value has a non-zero gradient in the joint values."""
    origin = origin_of(reward, "reward")
    q = start.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        twist, position, rotation = error_and_distances(chain.forward_kinematics(q), target)
        error = PoseError(twist, position, rotation)
        success = torch.zeros(TRIAL_ARMS, dtype=torch.bool, device=chain.device)
        value = reward(error, error, success)
        _expect_tensor(origin, "rewards", value, (TRIAL_ARMS,), chain, what="[N]")
        if not value.requires_grad:
            return False
        (gradient,) = torch.autograd.grad(value.sum(), q, allow_unused=True)
    return gradient is not None and bool((gradient != 0).any()) and bool(torch.isfinite(gradient).all())


def _expect_features(origin: str, features: object, n: int, size: int, chain: KinematicChain) -> None:
    """Refuse ``features`` unless they are a tensor ``[n, size]`` or a non-empty tuple of
    tensors ``[n, k_i]`` with ``sum k_i = size`` (see :class:`~ikrl.extend.components.ObservationTransform`)."""
    what = f"[N, size(chain)] = [N, {size}]"
    if isinstance(features, list):
        raise PluginError(f"{origin} returned a list; it returns features {what} or a tuple of their blocks [N, k]")
    if not isinstance(features, tuple):
        _expect_tensor(origin, "features", features, (n, size), chain, what=what)
        return
    if not features:
        raise PluginError(f"{origin} returned an empty tuple; it returns features {what} or a tuple of their blocks")
    widths = []
    for i, block in enumerate(features):
        if not isinstance(block, Tensor) or block.dim() != 2 or block.shape[0] != n:
            got = f"of shape {tuple(block.shape)}" if isinstance(block, Tensor) else f"a {type(block).__name__}"
            raise PluginError(
                f"{origin} returned a tuple whose block {i} is {got}; each block is a tensor [N, k] "
                f"({n} arms here), the widths k summing to size(chain) = {size}"
            )
        _expect_tensor(origin, f"features block {i}", block, (n, block.shape[1]), chain)
        widths.append(block.shape[1])
    if sum(widths) != size:
        raise PluginError(
            f"{origin} returned blocks of widths {widths}, {sum(widths)} features in all; size(chain) says {size}"
        )


def _expect_tensor(
    origin: str, name: str, value: object, shape: Sequence[int], chain: KinematicChain, *, what: str | None = None
) -> None:
    """Refuse ``value`` unless it is a finite tensor of ``shape`` in the chain's dtype and device."""
    what = what or f"{list(shape)}"
    if not isinstance(value, Tensor):
        raise PluginError(f"{origin} returned {type(value).__name__} for its {name}; it returns a torch.Tensor {what}")
    if tuple(value.shape) != tuple(shape):
        raise PluginError(f"{origin} returned {name} of shape {tuple(value.shape)} for {shape[0]} arms; expected {what}")
    if value.dtype != chain.dtype:
        raise PluginError(
            f"{origin} returned {name} in {str(value.dtype).removeprefix('torch.')}; the environment is "
            f"{str(chain.dtype).removeprefix('torch.')}: compute in the dtype of the inputs (chain.dtype)"
        )
    if value.device != chain.device:
        raise PluginError(f"{origin} returned {name} on {value.device}; the environment is on {chain.device}")
    finite = torch.isfinite(value.detach())
    if not bool(finite.all()):
        raise PluginError(f"{origin} returned {name} with a value that is not finite (NaN or inf) in the trial")


"""The inverse-kinematics environment: a batched, differentiable TorchRL ``EnvBase``.

Each of the ``N`` arms (``batch_size=[N]``) holds joint values ``q`` and a reachable target
pose (forward kinematics of sampled joint values). An action is a joint-value delta,
clamped to ``±max_delta`` per joint; the new joint values stay inside the limits
(continuous joints wrap into ``[-pi, pi)``). The error between tip and target drives the
reward; an arm *terminates* when its position and rotation errors are both under the
tolerances, and is *truncated* after ``max_steps`` steps.

The environment is stateless in TorchRL's sense: ``_step`` reads ``q``, ``target`` and the
previous error from the input tensordict, so a rollout keeps the autograd graph and a
policy can be trained by back-propagating through it. Entries:

========================  ==========  ==================================================
key                       shape       meaning
========================  ==========  ==================================================
``observation``           [N, D]      the policy's input: the transforms' features, concatenated
``q``                     [N, dof]    joint values
``target``                [N, 4, 4]   target pose in the base frame
``error``                 [N, 6]      ``log(tip^-1 target)``, in the tip frame (:mod:`ikrl.kinematics.se3`)
``position_error``        [N, 1]      metres
``rotation_error``        [N, 1]      radians
``step_count``            [N, 1]      steps since the arm's last reset (int64)
``action``                [N, dof]    joint-value deltas
``reward``                [N, 1]
``done``/``terminated``/  [N, 1]      bool
``truncated``
========================  ==========  ==================================================

``IKEnv.render()`` draws the last state (or a given tensordict's) as an RGB array, so
TorchRL's ``PixelRenderTransform`` and ``VideoRecorder`` can record rollouts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from ikrl.errors import BadParameterError, IkrlError, JointInputError, NotAPoseError, ShapeError
from ikrl.extend.components import ObservationTransform, PoseError, RewardShape, Sampler, State
from ikrl.extend.guard import guard
from ikrl.extend.trial import check_shows, trial
from ikrl.kinematics import fused
from ikrl.kinematics.chain import Chain
from ikrl.kinematics.protocol import KinematicChain, bounds, into_limits
from ikrl.kinematics.se3 import check_poses, error_and_distances
from ikrl.spec.grammar import EnvSpec
from ikrl.util.checks import check_device, check_seed, is_finite_number

__all__ = ["MAX_ARMS", "IKEnv", "arms"]

#: Arms in one environment at most: more would not fit in memory (a pose alone is 64 bytes an arm).
MAX_ARMS = 2**24
#: How a step's tensordict is built: see IKEnv._packed.
_PACK = getattr(TensorDict, "_new_unsafe", TensorDict)


class IKEnv(EnvBase):
    """Batched inverse kinematics for one chain; build it with :func:`ikrl.make_env`.

    Args:
        chain: the arm (converted to ``dtype`` and ``device``).
        reward, sampler: a :class:`~ikrl.extend.components.RewardShape` and a :class:`~ikrl.extend.components.Sampler`.
        transforms: ``(name, transform)`` pairs; their features make up ``observation``.
        batch_size: number of arms ``N``.
        max_steps: steps before an arm is truncated.
        max_delta: largest joint change per step (radians or metres), one number or one per joint.
        position_tolerance, rotation_tolerance: success thresholds (metres, radians).
        seed: seeds the environment's own ``torch.Generator`` (random if None).
        spec: the explicit spec the environment was assembled from (kept as ``resolved_spec``).

    :meth:`render` returns a picture of the last reset or step (``uint8 [H, W, 3]``).
    """

    # EnvBase declares batch_locked as a property; a class attribute is how TorchRL's own
    # environments fix it.
    batch_locked = True  # pyright: ignore[reportAssignmentType]
    #: Gym's convention: what :meth:`render` returns.
    render_mode = "rgb_array"
    #: ``(q, target)``, detached, of the last reset or step: what :meth:`render` draws. The
    #: state itself lives in the tensordicts; this is only a view of it for pictures.
    _last: tuple[Tensor, Tensor] | None = None

    def __init__(
        self,
        chain: KinematicChain,
        reward: RewardShape,
        sampler: Sampler,
        transforms: Sequence[tuple[str, ObservationTransform]],
        *,
        batch_size: int | Sequence[int] | torch.Size = 64,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_steps: int = 100,
        max_delta: float | Sequence[float] = 0.1,
        position_tolerance: float = 0.005,
        rotation_tolerance: float = math.radians(2.0),
        seed: int | None = None,
        spec: EnvSpec | None = None,
    ) -> None:
        batch_size = arms(batch_size)
        _check_options(batch_size, dtype, max_steps, position_tolerance, rotation_tolerance)
        device = check_device(device)
        if seed is not None:
            check_seed("IKEnv", seed)
        super().__init__(device=device, batch_size=torch.Size([batch_size]))
        self.chain = chain.to(device=device, dtype=dtype)
        self.dtype = dtype
        # Guarded: an exception in a plugin's code names the plugin and its line (ikrl.extend.guard).
        self.reward_shape = guard(reward, f"reward {type(reward).__name__}")
        self.sampler = guard(sampler, f"sampler {type(sampler).__name__}")
        self.transforms = tuple((name, guard(t, f"transform {name!r}")) for name, t in transforms)
        for _, transform in self.transforms:
            check_shows(transform, transform.origin)
        self.max_steps = max_steps
        self.position_tolerance = position_tolerance
        self.rotation_tolerance = rotation_tolerance
        self.resolved_spec = spec
        self.max_delta = _per_joint(max_delta, self.chain, dtype, device)
        # No continuous joint: moving the joints is a clamp, done compiled without a gradient.
        self._bounded = not bool(self.chain.continuous.any())
        # An ikrl Chain's forward kinematics hands out the sin q, cos q of its pass (the observation's).
        self._shares_trig = isinstance(self.chain, Chain)
        #: Whether the reward carries a gradient to the joint values: gradient-based training
        #: (``apg``, ``goal``) needs one. The trial (:func:`ikrl.extend.trial.trial`) also checks
        #: every component's output once, here, rather than at the first reset or step.
        self.reward_differentiable = trial(
            self.chain,
            self.reward_shape,
            self.sampler,
            cast("tuple[tuple[str, ObservationTransform], ...]", self.transforms),
        ).reward_differentiable
        self._make_specs()
        self.set_seed(seed if seed is not None else int(torch.empty((), dtype=torch.int64).random_()))

    # ------------------------------------------------------------------ specs

    def _make_specs(self) -> None:
        n, dof = self.batch_size[0], self.chain.dof
        common = {"device": self.device, "dtype": self.dtype}
        size = sum(t.size(self.chain) for _, t in self.transforms)
        low, high = bounds(self.chain)
        state = {
            "q": Bounded(
                low=low.expand(n, dof), high=high.expand(n, dof), shape=torch.Size((n, dof)), **common
            ),
            "target": Unbounded(shape=torch.Size((n, 4, 4)), **common),
            "error": Unbounded(shape=torch.Size((n, 6)), **common),
            "position_error": Unbounded(shape=torch.Size((n, 1)), **common),
            "rotation_error": Unbounded(shape=torch.Size((n, 1)), **common),
            "step_count": Bounded(
                low=0, high=self.max_steps, shape=torch.Size((n, 1)), device=self.device, dtype=torch.int64
            ),
        }
        self.observation_spec = Composite(
            observation=Unbounded(shape=torch.Size((n, size)), **common),
            **state,
            shape=torch.Size((n,)),
            device=self.device,
        )
        self.state_spec = Composite(
            {k: v.clone() for k, v in state.items()}, shape=torch.Size((n,)), device=self.device
        )
        self.action_spec = Bounded(
            low=-self.max_delta.expand(n, dof),
            high=self.max_delta.expand(n, dof),
            shape=torch.Size((n, dof)),
            **common,
        )
        self.reward_spec = Unbounded(shape=torch.Size((n, 1)), **common)
        flag = {"n": 2, "shape": torch.Size((n, 1)), "dtype": torch.bool, "device": self.device}
        self.done_spec = Composite(
            done=Categorical(**flag), terminated=Categorical(**flag), truncated=Categorical(**flag),
            shape=torch.Size((n,)), device=self.device,
        )  # fmt: skip

    # ------------------------------------------------------------------ dynamics

    def _set_seed(self, seed: int | None) -> None:
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(
            int(seed) if seed is not None else int(torch.empty((), dtype=torch.int64).random_())
        )

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        n = self.batch_size[0]
        start, target_q = self.sampler(self.chain, n, self.rng)
        q = start.to(device=self.device, dtype=self.dtype)
        target = self.chain.forward_kinematics(target_q.to(device=self.device, dtype=self.dtype))
        step_count = torch.zeros(n, 1, dtype=torch.int64, device=self.device)
        mask = None if tensordict is None else tensordict.get("_reset", None)
        if (
            tensordict is not None
            and mask is not None
            and not bool(mask.all())
            and all(k in tensordict.keys() for k in ("q", "target"))
        ):
            # A partial reset: arms outside the mask keep their joints, target and count.
            keep = ~mask.reshape(n, 1)
            q = torch.where(keep, tensordict["q"], q)
            target = torch.where(keep.unsqueeze(-1), tensordict["target"], target)
            if "step_count" in tensordict.keys():
                step_count = torch.where(keep, tensordict["step_count"], step_count)
        return self.state_at(q, target, step_count=step_count)

    def state_at(self, q: Tensor, target: Tensor, *, step_count: Tensor | None = None) -> TensorDictBase:
        """The tensordict of arms at joint values ``q [N, dof]`` facing target poses
        ``target [N, 4, 4]``, as :meth:`reset` returns it: a rollout can start from chosen
        states (evaluation on held-out targets, a solver's warm start).

        ``q`` must lie within the limits (:func:`~ikrl.kinematics.protocol.into_limits`); it is not moved.
        """
        n = self.batch_size[0]
        for name, value in (("q", q), ("target", target)):
            if not isinstance(value, Tensor):
                raise JointInputError(
                    f"state_at: {name} must be a tensor ({'joint values [N, dof]' if name == 'q' else 'poses [N, 4, 4]'}); "
                    f"got {type(value).__name__}"
                )
        if tuple(q.shape) != (n, self.chain.dof) or tuple(target.shape) != (n, 4, 4):
            raise ShapeError(
                f"state_at needs q of shape ({n}, {self.chain.dof}) and target of shape ({n}, 4, 4) "
                f"for this environment of {n} arms; got {tuple(q.shape)} and {tuple(target.shape)}"
            )
        if q.dtype == torch.bool or q.is_complex() or q.is_meta:
            raise JointInputError(
                f"state_at: q must hold real joint values (a float tensor, radians or metres); got a {q.dtype} tensor"
                + (" on the meta device" if q.is_meta else "")
            )
        if target.dtype not in (torch.float32, torch.float64):
            raise NotAPoseError(
                f"state_at: target must be a float32 or float64 tensor of poses [N, 4, 4]; got dtype {target.dtype}"
            )
        check_poses(target, "target[{}]")
        if not bool(torch.isfinite(q).all()):
            raise JointInputError(
                f"state_at: q has a value that is not finite (row {int(torch.nonzero(~torch.isfinite(q).all(-1))[0, 0])})"
            )
        q = q.to(device=self.device, dtype=self.dtype)
        target = target.to(device=self.device, dtype=self.dtype)
        if not bool(torch.isfinite(target).all()):
            row = int(torch.nonzero(~torch.isfinite(target).flatten(1).all(-1))[0, 0])
            raise NotAPoseError(
                f"state_at: target[{row}] does not fit this {str(self.dtype).removeprefix('torch.')} environment "
                f"(an entry overflows to inf); give targets within +-{torch.finfo(self.dtype).max:.3g}"
            )
        self._check_within_limits(q)
        step_count = self._checked_step_count(step_count, n)
        q = q.to(device=self.device, dtype=self.dtype)
        target = target.to(device=self.device, dtype=self.dtype)
        entries, _ = self._observe(q, target)
        self._last = (q.detach(), target.detach())
        false = torch.zeros(n, 1, dtype=torch.bool, device=self.device)
        entries.update(step_count=step_count, done=false, terminated=false.clone(), truncated=false.clone())
        return self._packed(entries)

    def _check_within_limits(self, q: Tensor) -> None:
        """Refuse joint values outside :func:`~ikrl.kinematics.protocol.bounds` (a few units
        in the last place of the environment's dtype of slack: a float64 value at its limit,
        rounded to float32, stays acceptable)."""
        low, high = bounds(self.chain)
        slack = 4 * torch.finfo(self.dtype).eps
        below = q < low - slack * (1 + low.abs())
        above = q > high + slack * (1 + high.abs())
        outside = below | above
        if bool(outside.any()):
            row, joint = (int(i) for i in torch.nonzero(outside)[0])
            kind = " (continuous: it wraps into [-pi, pi))" if bool(self.chain.continuous[joint]) else ""
            raise JointInputError(
                f"state_at: q[{row}, {joint}] = {float(q[row, joint]):.6g} is outside the limits of joint "
                f"{self.chain.joint_names[joint]!r}, [{float(low[joint]):.6g}, {float(high[joint]):.6g}]{kind}; "
                "give joint values within the limits (ikrl.kinematics.protocol.into_limits moves them there)"
            )

    def _checked_step_count(self, step_count: Tensor | None, n: int) -> Tensor:
        """``step_count`` if it is an int64 tensor ``[N, 1]`` in ``[0, max_steps]`` (zeros if None)."""
        if step_count is None:
            return torch.zeros(n, 1, dtype=torch.int64, device=self.device)
        if (
            not isinstance(step_count, Tensor)
            or step_count.dtype != torch.int64
            or tuple(step_count.shape) != (n, 1)
        ):
            got = (
                f"a {step_count.dtype} tensor of shape {tuple(step_count.shape)}"
                if isinstance(step_count, Tensor)
                else type(step_count).__name__
            )
            raise JointInputError(
                f"state_at: step_count must be an int64 tensor of shape ({n}, 1), steps since each arm's reset; got {got}"
            )
        bad = (step_count < 0) | (step_count > self.max_steps)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise JointInputError(
                f"state_at: step_count[{row}] = {int(step_count[row, 0])}; steps since a reset lie in [0, max_steps = {self.max_steps}]"
            )
        return step_count.to(self.device)

    def _moved(self, q: Tensor, action: Tensor) -> Tensor:
        """The joint values after ``action``, clamped to ``±max_delta`` per joint: bounded
        joints stop at their limits, continuous joints wrap into [-pi, pi). A non-finite
        action is refused (clamp would pass NaN through into the joints)."""
        if self._bounded and action.dtype == q.dtype == self.dtype and fused.usable(q, action):
            # Without a gradient to carry, one compiled pass (the same float operations).
            moved = fused.moved_joints(q, action, self.max_delta, self.chain.lower, self.chain.upper)
            if moved is not None:
                return moved
        finite = torch.isfinite(action).all(-1)
        if not bool(finite.all()):
            raise JointInputError(
                f"env.step: the action of arm {int(torch.nonzero(~finite)[0, 0])} has a value that is not finite "
                f"(NaN or inf); actions are joint deltas, at most max_delta per joint"
            )
        return into_limits(self.chain, q + torch.clamp(action, -self.max_delta, self.max_delta))

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        q = self._moved(tensordict["q"], tensordict["action"])
        before = PoseError(
            tensordict["error"],
            tensordict["position_error"].squeeze(-1),
            tensordict["rotation_error"].squeeze(-1),
        )
        target = tensordict["target"]
        tip, sin_cos = self._kinematics(q)
        step_count = tensordict["step_count"]
        if fused.usable(tip, target):
            # Without a gradient to carry, the error and the flags in one compiled pass.
            twist, position, rotation, step_count, terminated, truncated, done = fused.step_outcome(
                tip, target, step_count, self.position_tolerance, self.rotation_tolerance, self.max_steps
            )
        else:
            twist, distance, angle = error_and_distances(tip, target)
            position, rotation = distance.unsqueeze(-1), angle.unsqueeze(-1)
            terminated = (position < self.position_tolerance) & (rotation < self.rotation_tolerance)
            step_count = step_count + 1
            truncated = step_count >= self.max_steps
            done = terminated | truncated
        after = PoseError(twist, position.squeeze(-1), rotation.squeeze(-1))
        entries = self._entries(State(self.chain, q, target, tip, after, sin_cos))
        self._last = (q.detach(), target.detach())
        entries.update(
            reward=self.reward_shape(before, after, terminated.squeeze(-1)).reshape(-1, 1),  # [N] in dtype: checked by the trial
            step_count=step_count, terminated=terminated, truncated=truncated, done=done,
        )  # fmt: skip
        return self._packed(entries)

    def _observe(self, q: Tensor, target: Tensor) -> tuple[dict[str, Tensor], PoseError]:
        """The entries that follow from the joint values ``q`` and the ``target`` (the pose
        error, the observation), and the error itself."""
        tip, sin_cos = self._kinematics(q)
        # Without a gradient to carry, the error in one compiled pass (same formulas, ~5x faster).
        pose_error = fused.error_and_distances if fused.usable(tip, target) else error_and_distances
        error = PoseError(*pose_error(tip, target))
        return self._entries(State(self.chain, q, target, tip, error, sin_cos)), error

    def _kinematics(self, q: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """The tip pose and, where an ikrl :class:`Chain`'s pass computes them anyway, ``(sin q,
        cos q)`` for the observation (``sincos`` then costs nothing)."""
        if self._shares_trig:
            return cast("Chain", self.chain).forward_kinematics_and_trig(q)
        return self.chain.forward_kinematics(q), None

    def _entries(self, state: State) -> dict[str, Tensor]:
        """The state's entries: joints, target, error and the transforms' observation."""
        q, target, error = state.q, state.target, state.error
        blocks: list[Tensor] = []
        for _, transform in self.transforms:  # a tuple of blocks joins the one concatenation
            features = transform(state)
            if isinstance(features, tuple):
                blocks.extend(features)
            else:
                blocks.append(features)
        return {
            "q": q,
            "target": target,
            "error": error.twist,
            "position_error": error.position.unsqueeze(-1),
            "rotation_error": error.rotation.unsqueeze(-1),
            "observation": torch.cat(blocks, -1),
        }

    def _packed(self, entries: dict[str, Tensor]) -> TensorDict:
        """One tensordict of the batch's entries, built at once (cheaper than set by set).

        Built as TorchRL's own environments build their steps' (``GymLikeEnv._step``), without
        the per-entry checks of ``TensorDict(...)``: the entries are this class's, ``[N, ...]``
        on the environment's device (the components' outputs were checked by the trial), and
        the checks cost as much as the pose error's flags. Without that constructor (another
        tensordict), the checked one.
        """
        return _PACK(entries, batch_size=self.batch_size, device=self.device)

    # ------------------------------------------------------------------ pictures

    def render(
        self, index: int | TensorDictBase | None = None, *, size: tuple[int, int] = (480, 480)
    ) -> np.ndarray:
        """A picture of arm ``index`` and its target (default: the first four arms), as
        ``uint8 [H, W, 3]`` with ``(W, H) = size``.

        Draws the last :meth:`reset` or :meth:`step`, since the environment itself keeps no
        state. ``index`` may also be a tensordict with ``q`` and ``target`` (what TorchRL's
        ``PixelRenderTransform(pass_tensordict=True)`` passes); then that state is drawn.
        See :func:`ikrl.viz.arm.render_frame`.
        """
        from ikrl.viz.arm import render_frame  # matplotlib only once something is drawn

        n = self.batch_size[0]
        if isinstance(index, TensorDictBase):
            if "q" not in index or "target" not in index:
                raise BadParameterError(
                    f"render(tensordict) draws its 'q' and 'target' entries; it has {sorted(index.keys())}"
                )
            q = index.get("q").reshape(-1, self.chain.dof)
            target = index.get("target").reshape(-1, 4, 4)
            index = None
        elif self._last is None:
            raise IkrlError(
                "nothing to render yet: call env.reset() (or env.rollout(...)) first, then env.render()"
            )
        else:
            q, target = self._last
        if index is None:
            shown = min(4, q.shape[0])
            rows = slice(0, shown)
            arms = "arm 0" if shown == 1 else f"arms 0-{shown - 1} of {n}"
            title = f"{self.chain.name}: {arms}"
        elif isinstance(index, int) and not isinstance(index, bool) and -n <= index < n:
            index %= n
            rows = slice(index, index + 1)
            title = f"{self.chain.name}: arm {index} of {n}"
        else:
            raise BadParameterError(
                f"index must be an int from {-n} to {n - 1} (one of the {n} arms) or None; got {index!r}"
            )
        return render_frame(self.chain, q[rows], target[rows], size=size, title=title)

    def __repr__(self) -> str:
        spec = f"{str(self.resolved_spec)!r}, " if self.resolved_spec is not None else ""
        dtype = str(self.dtype).removeprefix("torch.")
        return f"IKEnv({spec}batch_size={self.batch_size[0]}, dtype={dtype}, device={self.device})"


def arms(batch_size: object) -> int:
    """The number of arms ``N`` from ``batch_size``: an int, or TorchRL's ``[N]`` / ``torch.Size([N])``,
    from 1 to :data:`MAX_ARMS`.

    Examples:
        >>> arms(64), arms([64]), arms(torch.Size([64]))
        (64, 64, 64)
    """
    if isinstance(batch_size, (list, tuple)) and len(batch_size) == 1:  # torch.Size is a tuple
        batch_size = batch_size[0]
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_ARMS:
        raise BadParameterError(
            f"batch_size must be a positive int N, [N] or torch.Size([N]) (the number of arms, at most {MAX_ARMS:,}); "
            f"got {batch_size!r}"
        )
    return batch_size


def _check_options(batch_size, dtype, max_steps, position_tolerance, rotation_tolerance) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BadParameterError(f"batch_size must be a positive int (the number of arms); got {batch_size!r}")
    if dtype not in (torch.float32, torch.float64):
        raise BadParameterError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise BadParameterError(f"max_steps must be a positive int; got {max_steps!r}")
    if not (is_finite_number(position_tolerance) and position_tolerance > 0):
        raise BadParameterError(
            f"position_tolerance must be a positive number (metres); got {position_tolerance!r}"
        )
    if not (is_finite_number(rotation_tolerance) and 0 < rotation_tolerance <= math.pi):
        hint = (
            f" (math.radians({rotation_tolerance:g}) for {rotation_tolerance:g} degrees)"
            if is_finite_number(rotation_tolerance) and rotation_tolerance > math.pi
            else ""
        )
        raise BadParameterError(
            f"rotation_tolerance must be a number of radians in (0, pi]{hint}; got {rotation_tolerance!r}"
        )


def _per_joint(
    value: float | Sequence[float], chain: KinematicChain, dtype: torch.dtype, device: torch.device
) -> Tensor:
    wrong = BadParameterError(
        f"max_delta must be one positive number or {chain.dof} (one per joint of {chain.name!r}; radians or metres per step); got {value!r}"
    )
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex() or value.dim() > 1:
            raise wrong
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf" or value.ndim > 1:
            raise wrong
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if not all(is_finite_number(v) for v in value):
            raise wrong
    elif not is_finite_number(value):
        raise wrong
    values = torch.as_tensor(value, dtype=dtype, device=device).flatten()
    if values.numel() == 1:
        values = values.expand(chain.dof).clone()
    if values.numel() != chain.dof or not bool((values > 0).all()) or not bool(torch.isfinite(values).all()):
        raise wrong
    return values

"""An environment step's pieces in compiled passes, for code that needs no gradient through
them: the pose error of :func:`ikrl.se3.error_and_distances` (:func:`error_and_distances`;
with the step's flags, :func:`step_outcome`) and the joint values after an action
(:func:`moved_joints`).

:func:`~ikrl.se3.error_and_distances` is a few dozen torch operations, each a pass over
the batch with its own temporaries (the quaternion alone builds four candidate rows per
element and gathers one); at the batch sizes of an environment step it costs more than the
forward kinematics it follows. Here the same quantities come from one loop over the batch
in numba (``parallel``, ``cache=True``: compiled once per machine), each element in
float64 registers, written straight into the output tensors:

* the error twist ``log(current^-1 @ target)``, ``[..., 6]`` ordered ``(v, w)`` in the
  current (tip) frame, metres and radians;
* the distance between the frame origins, ``[...]``, metres;
* the angle of ``R_current^T R_target``, ``[...]``, radians in ``[0, pi]``.

The formulas are those of :mod:`ikrl.kinematics.se3` (the rotation through the quaternion of
the largest denominator, the same Taylor series near zero), so the two agree to the rounding
of the dtype (tested). It is not differentiable: :func:`error_and_distances` refuses inputs
that need a gradient rather than cut the graph without a word.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.kinematics.compiled import column_dot, for_rows, serial_and_parallel, usable
from ikrl.kinematics.se3 import _check_trailing

__all__ = ["StepOutcome", "error_and_distances", "moved_joints", "step_outcome", "usable"]

# (1 - (t/2) cot(t/2)) / t^2 in powers of t^2, as in ikrl.kinematics.se3.
_D0, _D1, _D2, _D3, _D4 = 1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160


@numba.njit(cache=True, nogil=True, inline="always")
def _error_row(c, t, twist):  # pragma: no cover - compiled
    """The error of pose ``c [4, 4]`` to pose ``t [4, 4]``: writes the twist into ``twist [6]``
    and returns ``(position, rotation)`` (metres, radians), all computed in float64."""
    # m_rk = (R_current^T R_target)_rk = column r of R_current . column k of R_target (scalars:
    # an array per element would be an allocation in the loop).
    m00, m01, m02 = column_dot(c, t, 0, 0), column_dot(c, t, 0, 1), column_dot(c, t, 0, 2)
    m10, m11, m12 = column_dot(c, t, 1, 0), column_dot(c, t, 1, 1), column_dot(c, t, 1, 2)
    m20, m21, m22 = column_dot(c, t, 2, 0), column_dot(c, t, 2, 1), column_dot(c, t, 2, 2)
    f0 = 1.0 + m00 + m11 + m22
    f1 = 1.0 + m00 - m11 - m22
    f2 = 1.0 - m00 + m11 - m22
    f3 = 1.0 - m00 - m11 + m22
    # The row of the largest 4 q_i^2 (the first of equals, as torch.argmax), over 2 |q_i|.
    if f0 >= f1 and f0 >= f2 and f0 >= f3:
        qw, qx, qy, qz = f0, m21 - m12, m02 - m20, m10 - m01
    elif f1 >= f2 and f1 >= f3:
        qw, qx, qy, qz = m21 - m12, f1, m10 + m01, m02 + m20
    elif f2 >= f3:
        qw, qx, qy, qz = m02 - m20, m10 + m01, f2, m12 + m21
    else:
        qw, qx, qy, qz = m10 - m01, m20 + m02, m21 + m12, f3
    scale = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)  # the 2 |q_i| divides out
    if qw < 0.0:
        scale = -scale
    qw, qx, qy, qz = qw * scale, qx * scale, qy * scale, qz * scale
    n_sq = qx * qx + qy * qy + qz * qz
    n = math.sqrt(n_sq)
    angle = 2.0 * math.atan2(n, qw)
    # Rotation vector = angle / n * (x, y, z); near zero the series of 2 atan(x)/x / w.
    if n_sq < 1e-10:
        x_sq = n_sq / (qw * qw)
        factor = (2.0 / qw) * (1.0 - x_sq / 3.0 + x_sq * x_sq / 5.0)
    else:
        factor = angle / n
    wx, wy, wz = factor * qx, factor * qy, factor * qz
    ox = np.float64(t[0, 3]) - c[0, 3]
    oy = np.float64(t[1, 3]) - c[1, 3]
    oz = np.float64(t[2, 3]) - c[2, 3]
    # p: the origin offset in the current frame; v = V(w)^-1 p.
    px = c[0, 0] * ox + c[1, 0] * oy + c[2, 0] * oz
    py = c[0, 1] * ox + c[1, 1] * oy + c[2, 1] * oz
    pz = c[0, 2] * ox + c[1, 2] * oy + c[2, 2] * oz
    theta_sq = wx * wx + wy * wy + wz * wz
    if theta_sq < 1e-2:
        d = _D0 + theta_sq * (_D1 + theta_sq * (_D2 + theta_sq * (_D3 + theta_sq * _D4)))
    else:  # (theta / 2) cot(theta / 2) with theta = |w| = angle, cot(theta / 2) = w / n (w >= 0):
        d = (1.0 - 0.5 * factor * qw) / theta_sq  # no cos, no sin; factor = angle / n here
    ax, ay, az = wy * pz - wz * py, wz * px - wx * pz, wx * py - wy * px  # w x p
    bx, by, bz = wy * az - wz * ay, wz * ax - wx * az, wx * ay - wy * ax  # w x (w x p)
    twist[0] = px - 0.5 * ax + d * bx
    twist[1] = py - 0.5 * ay + d * by
    twist[2] = pz - 0.5 * az + d * bz
    twist[3], twist[4], twist[5] = wx, wy, wz
    return math.sqrt(ox * ox + oy * oy + oz * oz), angle


def _rows(current, target, twist, position, rotation):  # pragma: no cover - compiled
    for i in numba.prange(current.shape[0]):
        position[i], rotation[i] = _error_row(current[i], target[i], twist[i])


_SERIAL, _PARALLEL = serial_and_parallel(_rows)


def error_and_distances(current: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(twist [..., 6], position [...], rotation [...])`` of :func:`ikrl.se3.error_and_distances`,
    compiled, in the dtype of ``current``.

    ``current`` and ``target`` are poses ``[..., 4, 4]`` of the same shape and dtype on the CPU
    that need no gradient (see :func:`usable`).

    Examples:
        >>> from ikrl.kinematics import se3
        >>> current = torch.eye(4).expand(2, 4, 4)
        >>> target = se3.se3_exp(torch.tensor([[0.1, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0] * 6]))
        >>> twist, position, rotation = error_and_distances(current, target)
        >>> twist[:, 5], position.round(decimals=4), rotation
        (tensor([0.5000, 0.0000]), tensor([0.0990, 0.0000]), tensor([0.5000, 0.0000]))
    """
    _check_trailing(current, (4, 4), "current")
    _check_trailing(target, (4, 4), "target")
    if current.shape != target.shape or current.dtype != target.dtype:
        raise BadParameterError(
            f"current and target must have the same shape and dtype; got {tuple(current.shape)} {current.dtype} "
            f"and {tuple(target.shape)} {target.dtype}"
        )
    if not usable(current, target):
        raise BadParameterError(
            "the compiled pose error takes float32 or float64 CPU tensors that need no gradient; "
            "use ikrl.se3.error_and_distances (differentiable, any device) for these"
        )
    lead = current.shape[:-2]
    flat_current = current.detach().reshape(-1, 4, 4).contiguous()
    flat_target = target.detach().reshape(-1, 4, 4).contiguous()
    n = flat_current.shape[0]
    twist = torch.empty(n, 6, dtype=current.dtype)
    position = torch.empty(n, dtype=current.dtype)
    rotation = torch.empty(n, dtype=current.dtype)
    if n:
        for_rows(n, _SERIAL, _PARALLEL)(flat_current.numpy(), flat_target.numpy(), twist.numpy(), position.numpy(), rotation.numpy())
    return twist.reshape(*lead, 6), position.reshape(lead), rotation.reshape(lead)


class StepOutcome(NamedTuple):
    """What :func:`step_outcome` returns for ``N`` arms: the pose error and the flags of one step."""

    twist: Tensor  #: [N, 6] error twist, tip frame, (v, w): metres, radians
    position: Tensor  #: [N, 1] distance between the origins, metres
    rotation: Tensor  #: [N, 1] rotation angle, radians in [0, pi]
    step_count: Tensor  #: [N, 1] int64, the steps since the arm's reset, this one included
    terminated: Tensor  #: [N, 1] bool, position < position tolerance and rotation < rotation tolerance
    truncated: Tensor  #: [N, 1] bool, step_count >= max_steps
    done: Tensor  #: [N, 1] bool, terminated or truncated


def _outcome_rows(current, target, steps, tolerances, max_steps, twist, position, rotation, steps_after, terminated, truncated, done):  # pragma: no cover - compiled
    for i in numba.prange(current.shape[0]):
        position[i, 0], rotation[i, 0] = _error_row(current[i], target[i], twist[i])
        # Compared after rounding to the outputs' dtype, with the tolerances in that dtype: what
        # torch does for `position < tolerance` on a float32 tensor.
        success = position[i, 0] < tolerances[0] and rotation[i, 0] < tolerances[1]
        count = steps[i, 0] + 1
        steps_after[i, 0] = count
        terminated[i, 0] = success
        truncated[i, 0] = count >= max_steps
        done[i, 0] = success or count >= max_steps


_OUTCOME_SERIAL, _OUTCOME_PARALLEL = serial_and_parallel(_outcome_rows)
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


def step_outcome(
    current: Tensor,
    target: Tensor,
    step_count: Tensor,
    position_tolerance: float,
    rotation_tolerance: float,
    max_steps: int,
) -> StepOutcome:
    """The pose error of :func:`error_and_distances` and an environment step's flags, in one
    compiled pass over ``N`` arms.

    ``current`` and ``target`` are poses ``[N, 4, 4]`` of one dtype on the CPU that need no
    gradient (:func:`usable`); ``step_count`` is int64 ``[N, 1]``, the steps before this one.
    An arm *terminates* when both its distances are under the tolerances (metres, radians),
    compared in the poses' dtype, as torch compares a tensor with a number; it is *truncated*
    when its step count reaches ``max_steps``.

    Examples:
        >>> from ikrl.kinematics import se3
        >>> current = torch.eye(4).expand(2, 4, 4)
        >>> target = se3.se3_exp(torch.tensor([[0.001, 0.0, 0.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0, 0.0, 0.0]]))
        >>> outcome = step_outcome(current, target, torch.tensor([[0], [99]]), 0.005, 0.035, 100)
        >>> outcome.position.flatten(), outcome.step_count.flatten(), outcome.terminated.flatten(), outcome.done.flatten()
        (tensor([0.0010, 0.1000]), tensor([  1, 100]), tensor([ True, False]), tensor([True, True]))
    """
    n = current.shape[0] if current.dim() == 3 else -1
    if (
        current.dim() != 3
        or current.shape[1:] != (4, 4)
        or target.shape != current.shape
        or target.dtype != current.dtype
        or not isinstance(step_count, Tensor)
        or step_count.dtype != torch.int64
        or step_count.shape != (n, 1)
    ):
        got = f"step_count {tuple(step_count.shape)} {step_count.dtype}" if isinstance(step_count, Tensor) else type(step_count).__name__
        raise BadParameterError(
            "step_outcome takes poses current and target [N, 4, 4] of one dtype and step_count int64 [N, 1]; "
            f"got current {tuple(current.shape)} {current.dtype}, target {tuple(target.shape)} {target.dtype}, {got}"
        )
    if not usable(current, target):
        raise BadParameterError(
            "the compiled step outcome takes float32 or float64 CPU poses that need no gradient; "
            "use ikrl.se3.error_and_distances (differentiable, any device) for these"
        )
    dtype = current.dtype
    twist = torch.empty(n, 6, dtype=dtype)
    position, rotation = torch.empty(n, 1, dtype=dtype), torch.empty(n, 1, dtype=dtype)
    steps = torch.empty(n, 1, dtype=torch.int64)
    terminated, truncated, done = (torch.empty(n, 1, dtype=torch.bool) for _ in range(3))
    tolerances = np.array((position_tolerance, rotation_tolerance), dtype=_NUMPY[dtype])
    if n:
        for_rows(n, _OUTCOME_SERIAL, _OUTCOME_PARALLEL)(
            current.detach().contiguous().numpy(), target.detach().contiguous().numpy(),
            step_count.contiguous().numpy(), tolerances, max_steps,
            twist.numpy(), position.numpy(), rotation.numpy(), steps.numpy(),
            terminated.numpy(), truncated.numpy(), done.numpy(),
        )  # fmt: skip
    return StepOutcome(twist, position, rotation, steps, terminated, truncated, done)


def _move_rows(q, action, max_delta, lower, upper, moved):  # pragma: no cover - compiled
    """``moved = clamp(q + clamp(action, -max_delta, max_delta), lower, upper)`` row by row,
    in the arrays' dtype; returns how many rows have an action that is not finite."""
    bad = 0
    for i in numba.prange(q.shape[0]):
        finite = True
        for j in range(q.shape[1]):
            a = action[i, j]
            finite = finite and math.isfinite(a)
            x = q[i, j] + min(max(a, -max_delta[j]), max_delta[j])
            moved[i, j] = min(max(x, lower[j]), upper[j])
        if not finite:
            bad += 1
    return bad


_MOVE_SERIAL, _MOVE_PARALLEL = serial_and_parallel(_move_rows)
#: From this many rows on, the joint move in parallel: a clamp is so little work per row that
#: below it waking the threads costs more than it saves (measured: 4,096 rows of 6 joints take
#: 0.03 ms either way, and the whole environment step was ~1 % faster with the serial loop).
_MOVE_PARALLEL_FROM = 1 << 16


def moved_joints(q: Tensor, action: Tensor, max_delta: Tensor, lower: Tensor, upper: Tensor) -> Tensor | None:
    """``clamp(q + clamp(action, -max_delta, max_delta), lower, upper)`` in one compiled pass,
    or None when some action is not finite (the caller names it).

    ``q`` and ``action`` are ``[N, dof]``, ``max_delta``, ``lower`` and ``upper`` ``[dof]``,
    all of one dtype (float32 or float64) on the CPU, none needing a gradient (see
    :func:`usable`): the bounded joints of :func:`ikrl.kinematics.protocol.into_limits`
    (continuous joints wrap instead, and are not handled here). The same float operations
    as the torch ones, so the same numbers.

    Examples:
        >>> moved_joints(torch.tensor([[0.0, 0.95]]), torch.tensor([[0.5, 0.2]]), torch.tensor([0.1, 0.1]),
        ...              torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0]))
        tensor([[0.1000, 1.0000]])
    """
    tensors = (q, action, max_delta, lower, upper)
    if not usable(*tensors) or len({t.dtype for t in tensors}) != 1 or q.dim() != 2 or q.shape != action.shape:
        raise BadParameterError(
            "moved_joints takes q and action [N, dof] and max_delta, lower, upper [dof] of one dtype "
            "(float32 or float64), CPU tensors that need no gradient; use ikrl.kinematics.protocol.into_limits for others"
        )
    moved = torch.empty_like(q, memory_format=torch.contiguous_format)
    arrays = [t.detach().contiguous().numpy() for t in tensors]
    bad = for_rows(q.shape[0], _MOVE_SERIAL, _MOVE_PARALLEL, _MOVE_PARALLEL_FROM)(*arrays, moved.numpy())
    return None if bad else moved

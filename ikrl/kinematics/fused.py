"""An environment step's pieces in compiled passes, for code that needs no gradient through
them: the pose error of :func:`ikrl.se3.error_and_distances` (:func:`error_and_distances`)
and the joint values after an action (:func:`moved_joints`).

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

import numba
import numpy as np
import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.kinematics.compiled import column_dot, for_rows, serial_and_parallel, usable
from ikrl.kinematics.se3 import _check_trailing

__all__ = ["error_and_distances", "moved_joints", "usable"]

# (1 - (t/2) cot(t/2)) / t^2 in powers of t^2, as in ikrl.kinematics.se3.
_D0, _D1, _D2, _D3, _D4 = 1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160


def _rows(current, target, twist, position, rotation):  # pragma: no cover - compiled
    for i in numba.prange(current.shape[0]):
        c, t = current[i], target[i]
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
        else:  # cot(theta / 2) = w / |(x, y, z)| of the unit quaternion (w >= 0): no cos, no sin
            d = (1.0 - 0.5 * math.sqrt(theta_sq) * qw / n) / theta_sq
        ax, ay, az = wy * pz - wz * py, wz * px - wx * pz, wx * py - wy * px  # w x p
        bx, by, bz = wy * az - wz * ay, wz * ax - wx * az, wx * ay - wy * ax  # w x (w x p)
        twist[i, 0] = px - 0.5 * ax + d * bx
        twist[i, 1] = py - 0.5 * ay + d * by
        twist[i, 2] = pz - 0.5 * az + d * bz
        twist[i, 3], twist[i, 4], twist[i, 5] = wx, wy, wz
        position[i] = math.sqrt(ox * ox + oy * oy + oz * oz)
        rotation[i] = angle


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
    bad = for_rows(q.shape[0], _MOVE_SERIAL, _MOVE_PARALLEL)(*arrays, moved.numpy())
    return None if bad else moved

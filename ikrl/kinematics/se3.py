"""SE(3) and SO(3) math in pure torch: the one place ikrl defines its conventions.

Conventions, used everywhere in ikrl:

* A **pose** is a 4x4 homogeneous matrix ``T = [[R, t], [0, 1]]`` acting on column
  vectors: a point ``p`` in the child frame is ``R @ p + t`` in the parent frame.
  Composition is the matrix product: ``T_a_c = T_a_b @ T_b_c``.
* A **twist** is a 6-vector ``xi = (v, w)``: translation part first, rotation part
  second (the order of Jacobian rows and of Pinocchio's ``Motion``). ``exp(xi)`` is the
  matrix exponential of ``[[hat(w), v], [0, 0]]``; ``log`` is its inverse, with the
  rotation angle ``|w|`` in ``[0, pi]``.
* The **error twist** between a current and a target pose is
  ``log(current^-1 @ target)``: expressed in the current (tip) frame, it is the twist
  that carries the tip onto the target, ``target = current @ exp(error)``.

Every function is batched over any leading shape, works in float32 and float64 on any
device, and is differentiable: near the identity and near rotations of pi the values
and gradients stay finite (small angles use Taylor series; the rotation log goes
through a quaternion, which stays well conditioned up to pi).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ikrl.errors import NotAPoseError, ShapeError
from ikrl.kinematics import compiled

__all__ = [
    "adjoint",
    "check_poses",
    "error_and_distances",
    "error_twist",
    "hat",
    "matrix_to_quaternion",
    "pose_errors",
    "quaternion_to_matrix",
    "rpy_to_matrix",
    "se3_compose",
    "se3_exp",
    "se3_inverse",
    "se3_log",
    "so3_exp",
    "so3_log",
    "vee",
    "wrap_angle",
]


def _check_trailing(x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[x.dim() - len(shape) :]) != shape or x.dim() < len(shape):
        expected = ", ".join(["..."] + [str(s) for s in shape])
        raise ShapeError(f"{what} must have shape ({expected}); got {tuple(x.shape)}")


def _small_angle_sq(dtype: torch.dtype) -> float:
    """Squared angle below which Taylor series replace the closed forms.

    The series below are exact to ~1e-11 at these bounds, while the closed forms lose
    digits to cancellation under them (float32 has 7 digits, float64 16).
    """
    return 1e-2 if dtype == torch.float64 else 0.25


def _series_or_closed(theta_sq: Tensor, series: Tensor, closed_fn) -> Tensor:
    """Pick the Taylor value for small angles, the closed form otherwise.

    The closed form is evaluated on a safe angle so neither branch produces NaN (a NaN
    in the unused branch of ``torch.where`` would still poison the gradient).
    """
    small = theta_sq < _small_angle_sq(theta_sq.dtype)
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    return torch.where(small, series, closed_fn(safe_sq))


def _poly(x: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """c0 + c1 x + c2 x^2 + ... by Horner's rule."""
    result = torch.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * x + c
    return result


# Taylor coefficients in powers of theta^2.
_SIN_OVER_T = (1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880)  # sin(t)/t
_ONE_MINUS_COS_OVER_T2 = (1 / 2, -1 / 24, 1 / 720, -1 / 40320, 1 / 3628800)  # (1-cos t)/t^2
_T_MINUS_SIN_OVER_T3 = (1 / 6, -1 / 120, 1 / 5040, -1 / 362880, 1 / 39916800)  # (t-sin t)/t^3
# (1 - (t/2) cot(t/2)) / t^2: the w^2 coefficient of the inverse of the left Jacobian.
_INV_LEFT_JACOBIAN = (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160)


def _sin_over_t(theta_sq: Tensor) -> Tensor:
    def closed(t2: Tensor) -> Tensor:
        t = t2.sqrt()
        return torch.sin(t) / t

    return _series_or_closed(theta_sq, _poly(theta_sq, _SIN_OVER_T), closed)


def _one_minus_cos_over_t2(theta_sq: Tensor) -> Tensor:
    def closed(t2: Tensor) -> Tensor:
        half = 0.5 * t2.sqrt()
        # 2 sin^2(t/2) / t^2 has no cancellation, unlike (1 - cos t) / t^2.
        return 0.5 * (torch.sin(half) / half) ** 2

    return _series_or_closed(theta_sq, _poly(theta_sq, _ONE_MINUS_COS_OVER_T2), closed)


def _t_minus_sin_over_t3(theta_sq: Tensor) -> Tensor:
    def closed(t2: Tensor) -> Tensor:
        t = t2.sqrt()
        return (t - torch.sin(t)) / (t2 * t)

    return _series_or_closed(theta_sq, _poly(theta_sq, _T_MINUS_SIN_OVER_T3), closed)


def _inv_left_jacobian_coefficient(theta_sq: Tensor) -> Tensor:
    def closed(t2: Tensor) -> Tensor:
        half = 0.5 * t2.sqrt()
        return (1.0 - half * torch.cos(half) / torch.sin(half)) / t2

    return _series_or_closed(theta_sq, _poly(theta_sq, _INV_LEFT_JACOBIAN), closed)


def hat(w: Tensor) -> Tensor:
    """Skew-symmetric matrix of ``w`` (``[..., 3] -> [..., 3, 3]``): ``hat(w) @ x == w x x``."""
    _check_trailing(w, (3,), "w")
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def vee(m: Tensor) -> Tensor:
    """Inverse of :func:`hat` (``[..., 3, 3] -> [..., 3]``); reads the antisymmetric part."""
    _check_trailing(m, (3, 3), "m")
    return 0.5 * torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
    )


def so3_exp(w: Tensor) -> Tensor:
    """Rotation matrix of the rotation vector ``w`` (axis times angle), ``[..., 3] -> [..., 3, 3]``."""
    _check_trailing(w, (3,), "w")
    theta_sq = (w * w).sum(-1)
    a = _sin_over_t(theta_sq)[..., None, None]
    b = _one_minus_cos_over_t2(theta_sq)[..., None, None]
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    # hat(w)^2 = w w^T - |w|^2 I
    k2 = w[..., :, None] * w[..., None, :] - theta_sq[..., None, None] * eye
    return eye + a * hat(w) + b * k2


def _sqrt_positive(x: Tensor) -> Tensor:
    """sqrt(max(x, 0)) whose gradient is 0, not inf, where x <= 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def matrix_to_quaternion(r: Tensor) -> Tensor:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix, ``[..., 3, 3] -> [..., 4]``.

    Of the four algebraically equal formulas, each batch element uses the one with the
    largest denominator, so the result is accurate for every rotation, pi included.
    """
    _check_trailing(r, (3, 3), "r")
    m00, m01, m02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    m10, m11, m12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    m20, m21, m22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    # 4w^2, 4x^2, 4y^2, 4z^2
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    two_abs = _sqrt_positive(four_sq)  # 2|w|, 2|x|, 2|y|, 2|z|
    # Row i is 4 * q_i * q; dividing by 4|q_i| gives +-q.
    rows = torch.stack(
        [
            torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], -1),
        ],
        -2,
    )
    # The floor only guards rows that are never selected (the best has 2|q_i| >= 1).
    candidates = rows / (2.0 * two_abs.clamp(min=0.1))[..., None]
    best = two_abs.argmax(-1, keepdim=True)
    q = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrix of a quaternion ``(w, x, y, z)``, ``[..., 4] -> [..., 3, 3]``.

    The quaternion is normalised first; ``q`` and ``-q`` give the same rotation. A zero
    quaternion names no rotation and gives NaN: code reading user input checks the norm
    first (:mod:`ikrl.solver.targets` does).
    """
    _check_trailing(q, (4,), "q")
    w, x, y, z = (q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _quaternion_to_rotation_vector(q: Tensor) -> Tensor:
    """Rotation vector of a unit quaternion with ``w >= 0`` (angle in [0, pi])."""
    w = q[..., 0]
    xyz = q[..., 1:]
    n_sq = (xyz * xyz).sum(-1)
    # 2 atan2(n, w) / n; for small n (then w ~ 1), the series of 2 atan(x)/x / w with x = n/w.
    # n = sin(theta/2), so theta^2 ~ 4 n^2: the same small-angle bound as the other series.
    small = n_sq < _small_angle_sq(q.dtype) / 4
    safe_w = torch.where(small, w, torch.ones_like(w))
    x_sq = n_sq / (safe_w * safe_w)
    series = (2.0 / safe_w) * _poly(x_sq, (1.0, -1 / 3, 1 / 5, -1 / 7, 1 / 9, -1 / 11))
    safe_n = torch.where(small, torch.ones_like(n_sq), n_sq).sqrt()
    closed = 2.0 * torch.atan2(safe_n, w) / safe_n
    return torch.where(small, series, closed)[..., None] * xyz


def so3_log(r: Tensor) -> Tensor:
    """Rotation vector (axis times angle, angle in ``[0, pi]``) of a rotation matrix."""
    return _quaternion_to_rotation_vector(matrix_to_quaternion(r))


def se3_exp(xi: Tensor) -> Tensor:
    """Pose of the twist ``xi = (v, w)``, ``[..., 6] -> [..., 4, 4]``."""
    _check_trailing(xi, (6,), "xi")
    v, w = xi[..., :3], xi[..., 3:]
    theta_sq = (w * w).sum(-1)
    b = _one_minus_cos_over_t2(theta_sq)[..., None]
    c = _t_minus_sin_over_t3(theta_sq)[..., None]
    w_x_v = torch.linalg.cross(w, v, dim=-1)
    t = v + b * w_x_v + c * torch.linalg.cross(w, w_x_v, dim=-1)
    top = torch.cat([so3_exp(w), t[..., :, None]], -1)
    bottom = xi.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(*xi.shape[:-1], 1, 4)
    return torch.cat([top, bottom], -2)


def se3_log(t: Tensor) -> Tensor:
    """Twist ``(v, w)`` of a pose, ``[..., 4, 4] -> [..., 6]``; inverse of :func:`se3_exp`."""
    _check_trailing(t, (4, 4), "T")
    w = so3_log(t[..., :3, :3])
    return torch.cat([_translation_part(w, t[..., :3, 3]), w], -1)


def _translation_part(w: Tensor, p: Tensor) -> Tensor:
    """``v = V(w)^-1 p``: the translation part of the twist of the pose ``(exp(w), p)``."""
    theta_sq = (w * w).sum(-1)
    d = _inv_left_jacobian_coefficient(theta_sq)[..., None]
    w_x_p = torch.linalg.cross(w, p, dim=-1)
    return p - 0.5 * w_x_p + d * torch.linalg.cross(w, w_x_p, dim=-1)


def se3_inverse(t: Tensor) -> Tensor:
    """Inverse of a pose: ``[[R^T, -R^T t], [0, 1]]`` (exact, no matrix inversion)."""
    _check_trailing(t, (4, 4), "T")
    rt = t[..., :3, :3].transpose(-1, -2)
    p = -(rt @ t[..., :3, 3:])
    return torch.cat([torch.cat([rt, p], -1), t[..., 3:, :]], -2)


def se3_compose(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b``: the pose ``b`` expressed through ``a`` (batched, broadcasting)."""
    _check_trailing(a, (4, 4), "a")
    _check_trailing(b, (4, 4), "b")
    return a @ b


def error_twist(current: Tensor, target: Tensor) -> Tensor:
    """``log(current^-1 @ target)``: the twist, in the current (tip) frame, to the target.

    ``target == current @ se3_exp(error_twist(current, target))``.
    """
    return error_and_distances(current, target)[0]


def pose_errors(current: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Position error (metres) and rotation error (radians, in ``[0, pi]``) between poses.

    The position error is the distance between the two frame origins; the rotation
    error is the angle of ``R_current^T R_target``. These two numbers define success in
    ikrl (environment tolerance, solver, evaluation), so they are computed here only.
    """
    quaternion, offset, _ = _relative(current, target)
    return _distances(quaternion, offset)


def error_and_distances(current: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`error_twist` and :func:`pose_errors` in one pass (the relative rotation and
    its quaternion are computed once): ``(twist [..., 6], position [...], rotation [...])``."""
    quaternion, offset, r_current = _relative(current, target)
    position, rotation = _distances(quaternion, offset)
    w = _quaternion_to_rotation_vector(quaternion)
    # The translation of current^-1 @ target, in the current frame.
    p = (r_current.transpose(-1, -2) @ offset.unsqueeze(-1)).squeeze(-1)
    return torch.cat([_translation_part(w, p), w], -1), position, rotation


def _relative(current: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Quaternion of ``R_current^T R_target``, the origin offset in the base frame, ``R_current``."""
    _check_trailing(current, (4, 4), "current")
    _check_trailing(target, (4, 4), "target")
    r_current = current[..., :3, :3]
    relative = r_current.transpose(-1, -2) @ target[..., :3, :3]
    return matrix_to_quaternion(relative), target[..., :3, 3] - current[..., :3, 3], r_current


def _distances(quaternion: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    position = torch.linalg.vector_norm(offset, dim=-1)
    rotation = 2.0 * torch.atan2(torch.linalg.vector_norm(quaternion[..., 1:], dim=-1), quaternion[..., 0])
    return position, rotation


def adjoint(t: Tensor) -> Tensor:
    """6x6 adjoint of a pose for twists ordered ``(v, w)``: ``[[R, hat(p) R], [0, R]]``.

    Maps a twist in the child frame to the same motion in the parent frame:
    ``hat6(adjoint(T) @ xi) == T @ hat6(xi) @ T^-1``.
    """
    _check_trailing(t, (4, 4), "T")
    r = t[..., :3, :3]
    top = torch.cat([r, hat(t[..., :3, 3]) @ r], -1)
    bottom = torch.cat([torch.zeros_like(r), r], -1)
    return torch.cat([top, bottom], -2)


def rpy_to_matrix(rpy: Tensor) -> Tensor:
    """Rotation of URDF roll-pitch-yaw angles: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    _check_trailing(rpy, (3,), "rpy")
    cr, cp, cy = torch.cos(rpy).unbind(-1)
    sr, sp, sy = torch.sin(rpy).unbind(-1)
    return torch.stack(
        [
            torch.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            torch.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            torch.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )


def wrap_angle(x: Tensor) -> Tensor:
    """Angles wrapped into ``[-pi, pi)``; the gradient is 1 (the wrap is a shift)."""
    y = torch.remainder(x + math.pi, 2 * math.pi) - math.pi
    # remainder can round up to exactly 2 pi (and float32 rounds pi upwards): keep pi out.
    return torch.where(y >= math.pi, y - 2 * math.pi, y)


#: How far from orthonormal (largest entry of ``R^T R - I``, and of the bottom row from
#: ``0 0 0 1``) a pose may be, by dtype: float32 forward kinematics is off by ~1e-6, and a
#: text file written with six decimals by ~1e-6 in float64; a rotation scaled or sheared by
#: a bug is off by far more.
POSE_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-4, torch.float64: 1e-5}


def _pose_defects(flat: Tensor, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Per pose of ``flat [N, 4, 4]``, as numpy arrays: whether every entry is finite, the
    largest entry of ``|R^T R - I|``, the largest of ``|bottom row - (0 0 0 1)|`` and
    ``det R``; None when the CPU's check finds every pose within ``tolerance``. Poses on the
    CPU are checked by one compiled loop, in float64 (torch's per-call overhead would cost a
    batch-1 solve more than the solve), others by torch in their dtype."""
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        n = flat.shape[0]
        finite, off, bottom, det = np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n), np.empty(n)
        if compiled.pose_defects(np.ascontiguousarray(flat.detach().numpy()), tolerance, finite, off, bottom, det):
            return None
        return finite, off, bottom, det
    rotation = flat[:, :3, :3]
    eye = torch.eye(3, dtype=flat.dtype, device=flat.device)
    off = (rotation.transpose(-1, -2) @ rotation - eye).abs().flatten(1).amax(-1)
    bottom = (flat[:, 3, :] - torch.tensor([0, 0, 0, 1], dtype=flat.dtype, device=flat.device)).abs().amax(-1)
    finite = torch.isfinite(flat).flatten(1).all(-1)
    det = torch.linalg.det(rotation) if bool(finite.all()) else torch.zeros(len(flat), dtype=flat.dtype, device=flat.device)
    return tuple(x.detach().cpu().numpy() for x in (finite, off, bottom, det))  # type: ignore[return-value]


def check_poses(poses: Tensor, what: str = "targets[{}]") -> Tensor:
    """``poses [..., 4, 4]``, checked to be rigid transforms: finite, the rotation block
    orthonormal with determinant +1 and the bottom row ``0 0 0 1``, within
    :data:`POSE_TOLERANCE` for their dtype; :class:`~ikrl.errors.NotAPoseError` names the
    first that is not, ``what`` formatted with its index.

    >>> import torch
    >>> check_poses(torch.eye(4).expand(2, 4, 4)).shape
    torch.Size([2, 4, 4])
    >>> bad = torch.eye(4).repeat(2, 1, 1); bad[1, :3, :3] *= 2
    >>> check_poses(bad)
    Traceback (most recent call last):
    ...
    ikrl.errors.NotAPoseError: targets[1] is not a pose: its rotation block is not orthonormal (largest entry of R^T R - I is 3; tolerance 0.0001 for float32)
    """
    _check_trailing(poses, (4, 4), what.format("").rstrip("[]: "))
    if not poses.is_floating_point():
        raise NotAPoseError(
            f"{what.format('').rstrip('[]: ')} must hold floating-point numbers (float32 or float64 poses); got a {poses.dtype} tensor"
        )
    if poses.is_meta:
        raise NotAPoseError(f"{what.format('').rstrip('[]: ')} is on the meta device, which holds no values; give the poses on a real device")
    if not poses.numel():
        return poses
    flat = poses.reshape(-1, 4, 4)
    tolerance = POSE_TOLERANCE.get(poses.dtype, 1e-4)

    def fail(index: int, problem: str) -> NotAPoseError:
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(index), poses.shape[:-2])) if poses.dim() > 3 else (index,)
        label = what.format(", ".join(str(i) for i in where))
        return NotAPoseError(f"{label} is not a pose: {problem}")

    defects = _pose_defects(flat, tolerance)
    if defects is None:
        return poses
    finite, off, bottom, det = defects
    if not bool(finite.all()):
        raise fail(int(np.nonzero(~finite)[0][0]), "it has an entry that is not finite")
    if bool((off > tolerance).any()):
        index = int(np.nonzero(off > tolerance)[0][0])
        raise fail(
            index,
            f"its rotation block is not orthonormal (largest entry of R^T R - I is {float(off[index]):.3g}; "
            f"tolerance {tolerance:g} for {str(poses.dtype).removeprefix('torch.')})",
        )
    if bool((bottom > tolerance).any()):
        index = int(np.nonzero(bottom > tolerance)[0][0])
        row = " ".join(f"{float(v):g}" for v in flat[index, 3])
        raise fail(index, f"its bottom row is {row}, not 0 0 0 1")
    if bool((det < 0).any()):
        raise fail(int(np.nonzero(det < 0)[0][0]), "its rotation block has determinant -1 (a reflection, not a rotation)")
    return poses

"""The kinematic chain: batched, differentiable forward kinematics and Jacobians.

A :class:`Chain` is the serial path of joints from a base link to a tip link. Parsers
(:mod:`ikrl.kinematics.urdf`) are thin adapters: they describe every joint of a robot as a
:class:`Joint` and call :meth:`Chain.from_joints`, which picks the path, resolves mimic
joints and precomputes everything constant, in float64, once. Forward kinematics is
then a short, fixed sequence of vectorised tensor operations:

* fixed joints are folded into their neighbours, so only movable joints cost anything;
* every joint frame is turned so that its z axis is the joint axis: a joint's world axis
  and a point on it are then columns 2 and 3 of its frame, which is all the Jacobian needs;
* each joint's local transform is linear in ``(1, cos q, sin q, q)``, so all of them
  come out of one batched matrix product with precomputed coefficients;
* mimic joints (``q_joint = multiplier * q_source + offset``) are one affine map;
* the local transforms are multiplied left to right as 3x4 blocks (``bmm`` for small
  batches, batch-last rank-1 updates for large ones).

Poses and Jacobians follow the conventions of :mod:`ikrl.kinematics.se3`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

from ikrl.errors import ChainError, UnknownLinkError, UnsupportedJointError
from ikrl.kinematics import compiled
from ikrl.kinematics.protocol import check_joints
from ikrl.kinematics.se3 import rpy_to_matrix
from ikrl.util.checks import check_device, check_dtype

__all__ = ["SUPPORTED_JOINT_TYPES", "Chain", "Joint", "Mimic"]

#: Joint types a chain can move along. Others (``floating``, ``planar``) may appear in a
#: robot description, but not on the path from base to tip.
SUPPORTED_JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")


@dataclass(frozen=True)
class Mimic:
    """``q = multiplier * q[joint] + offset``, as in URDF's ``<mimic>``."""

    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, eq=False)
class Joint:
    """One joint of a robot description, as a parser (or your own code) hands it to
    :meth:`Chain.from_joints`.

    Frames and units, as in URDF: ``origin`` is the 4x4 pose (float64) of the joint frame in
    the ``parent`` link's frame; the ``child`` link's frame is the joint frame moved by the
    joint value ``q`` along ``axis``, so that ``T_parent_child(q) = origin @ M(q)`` with
    ``M(q)`` a turn of ``q`` radians about ``axis`` (``revolute``, ``continuous``), a slide of
    ``q`` metres along it (``prismatic``) or the identity (``fixed``). ``axis`` is in the joint
    frame and need not be unit length. ``lower``/``upper`` are the limits (radians or metres;
    needed for revolute and prismatic joints, ignored for continuous and fixed ones). ``mimic``
    makes the joint follow another one (URDF's ``<mimic>``).

    Build the origin from URDF-style ``xyz``/``rpy`` with :meth:`from_xyz_rpy`, or from a
    modified Denavit-Hartenberg row with :meth:`from_dh`.

    Examples:
        >>> import torch
        >>> joint = Joint("elbow", "revolute", "upper_arm", "forearm", torch.eye(4, dtype=torch.float64),
        ...               axis=(0.0, 1.0, 0.0), lower=-2.5, upper=2.5)
        >>> joint.type, joint.axis
        ('revolute', (0.0, 1.0, 0.0))
    """

    name: str
    type: str
    parent: str
    child: str
    origin: Tensor
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    lower: float | None = None
    upper: float | None = None
    mimic: Mimic | None = None

    @classmethod
    def from_xyz_rpy(
        cls,
        name: str,
        type: str,
        parent: str,
        child: str,
        *,
        xyz: Sequence[float] = (0.0, 0.0, 0.0),
        rpy: Sequence[float] = (0.0, 0.0, 0.0),
        axis: Sequence[float] = (1.0, 0.0, 0.0),
        lower: float | None = None,
        upper: float | None = None,
        mimic: Mimic | None = None,
    ) -> Joint:
        """The joint whose origin is URDF's ``<origin xyz="..." rpy="...">``.

        ``xyz`` (metres) is the joint frame's origin in the parent link frame; ``rpy``
        (radians) its orientation as URDF writes it: roll about x, then pitch about y, then
        yaw about z, all about the parent's fixed axes, i.e. the rotation
        ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (:func:`ikrl.kinematics.se3.rpy_to_matrix`). The
        other arguments are the :class:`Joint` fields; ``axis`` defaults to x, as in URDF.
        The result is exactly what :func:`ikrl.load_chain` builds from the same numbers.

        Examples:
            >>> joint = Joint.from_xyz_rpy("j", "revolute", "a", "b", xyz=(0, 0, 0.3), rpy=(0, 0, math.pi / 2),
            ...                            axis=(0, 0, 1), lower=-1, upper=1)
            >>> joint.origin[:3, 3].tolist()  # the joint frame's origin, metres
            [0.0, 0.0, 0.3]
            >>> torch.allclose(joint.origin[:3, 0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))  # its x axis: yawed to y
            True
        """
        where = f"Joint.from_xyz_rpy({name!r})"
        x, y, z = _three(xyz, "xyz", "metres", where)
        roll, pitch, yaw = _three(rpy, "rpy", "radians", where)
        origin = _translation(x, y, z)
        origin[:3, :3] = rpy_to_matrix(torch.tensor([roll, pitch, yaw], dtype=torch.float64))
        return cls(
            name, type, parent, child, origin, axis=_three(axis, "axis", "a direction", where),
            lower=_optional_float(lower, "lower", where), upper=_optional_float(upper, "upper", where), mimic=mimic,
        )  # fmt: skip

    @classmethod
    def from_dh(
        cls,
        name: str,
        type: str,
        parent: str,
        child: str,
        *,
        a: float = 0.0,
        alpha: float = 0.0,
        d: float = 0.0,
        theta: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
        mimic: Mimic | None = None,
    ) -> Joint:
        """The joint of one row of a **modified** (Craig's, proximal) Denavit-Hartenberg table.

        The row ``(a_{i-1}, alpha_{i-1}, d_i, theta_i)`` gives the pose of link ``i``'s frame
        in link ``i-1``'s: ``Rx(alpha) @ Tx(a) @ Rz(theta + q) @ Tz(d)`` for a revolute or
        continuous joint, ``Rx(alpha) @ Tx(a) @ Rz(theta) @ Tz(d + q)`` for a prismatic one
        and, for a fixed joint (a flange or tool frame), the same with ``q = 0``. So the joint
        moves about (along) its own frame's z axis, ``theta`` (radians) and ``d`` (metres)
        being the offsets at ``q = 0``; ``a`` is in metres and ``alpha`` in radians. The
        joint's ``axis`` is z and its ``origin`` is ``Rx(alpha) Tx(a) Rz(theta) Tz(d)``.

        A **standard** (distal) DH table, with ``T_i = Rz(theta_i + q_i) Tz(d_i) Tx(a_i)
        Rx(alpha_i)`` (as Universal Robots publish theirs), is the same chain with ``a`` and
        ``alpha`` taken one row earlier: joint ``i`` is ``from_dh(a=a_{i-1}, alpha=alpha_{i-1},
        d=d_i, theta=theta_i)`` (``a_0 = alpha_0 = 0``), followed by a fixed joint
        ``from_dh(a=a_n, alpha=alpha_n)`` to the last frame (``Tx`` and ``Rx`` commute, as do
        ``Rz`` and ``Tz``).

        Examples:
            >>> joint = Joint.from_dh("j2", "revolute", "link1", "link2", a=0.3, alpha=-math.pi / 2, d=0.1,
            ...                       lower=-2, upper=2)
            >>> joint.axis, joint.origin.round(decimals=12).tolist()
            ((0.0, 0.0, 1.0), [[1.0, 0.0, 0.0, 0.3], [0.0, 0.0, 1.0, 0.1], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        """
        where = f"Joint.from_dh({name!r})"
        a, alpha, d, theta = (
            _finite(value, field, unit, where)
            for value, field, unit in ((a, "a", "metres"), (alpha, "alpha", "radians"), (d, "d", "metres"), (theta, "theta", "radians"))
        )
        origin = _rx(alpha) @ _translation(a, 0.0, 0.0) @ _rz(theta) @ _translation(0.0, 0.0, d)
        return cls(
            name, type, parent, child, origin, axis=(0.0, 0.0, 1.0),
            lower=_optional_float(lower, "lower", where), upper=_optional_float(upper, "upper", where), mimic=mimic,
        )  # fmt: skip


def _finite(value: object, field: str, unit: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChainError(f"{field} must be a finite number ({unit}); got {value!r}", source=where)
    return float(value)


def _optional_float(value: object, field: str, where: str) -> float | None:
    return None if value is None else _finite(value, field, "radians or metres", where)


def _three(values: Sequence[float], field: str, unit: str, where: str) -> tuple[float, float, float]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) != 3:
        raise ChainError(f"{field} must be 3 finite numbers ({unit}); got {values!r}", source=where)
    x, y, z = (_finite(v, field, unit, where) for v in values)
    return (x, y, z)


def _translation(x: float, y: float, z: float) -> Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 3] = torch.tensor([x, y, z], dtype=torch.float64)
    return pose


def _rotation(angle: float, i: int, j: int) -> Tensor:
    """A 4x4 turn by ``angle`` radians in the plane of axes ``i`` and ``j`` (float64)."""
    pose = torch.eye(4, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    pose[i, i], pose[i, j], pose[j, i], pose[j, j] = c, -s, s, c
    return pose


def _rx(angle: float) -> Tensor:
    return _rotation(angle, 1, 2)


def _rz(angle: float) -> Tensor:
    return _rotation(angle, 0, 1)


class Chain:
    """A serial kinematic chain from ``base`` to ``tip``, batched and differentiable.

    Build one with :func:`ikrl.load_chain` (URDF) or :meth:`Chain.from_joints`.

    Attributes:
        name: the robot's name.
        base, tip: link names; poses are of the tip frame in the base frame.
        dof: number of joint values ``q`` (actuated joints; mimic joints are derived).
        joint_names: the joints ``q`` holds, in order from base to tip.
        joint_types: ``"revolute"``, ``"continuous"`` or ``"prismatic"`` for each.
        lower, upper: limit tensors ``[dof]``; ``-inf``/``inf`` for continuous joints.
        continuous: bool tensor ``[dof]``, the joints that wrap around instead of stopping.
        dtype, device: of every tensor the chain takes and returns.
        env_defaults: what the robot declares for the environments built on it when the user
            gives no value: any of ``position_tolerance`` (metres), ``rotation_tolerance``
            (radians) and ``max_delta`` (radians or metres per step, one number or one per
            joint); empty unless set with :meth:`with_env_defaults`. Any chain may carry this
            optional attribute (see :mod:`ikrl.extend.hookspecs`).
    """

    def __init__(
        self,
        *,
        name: str,
        base: str,
        tip: str,
        joint_names: tuple[str, ...],
        joint_types: tuple[str, ...],
        exact: dict[str, Tensor],
        dtype: torch.dtype,
        device: torch.device | str,
        env_defaults: Mapping[str, float | tuple[float, ...]] | None = None,
    ) -> None:
        # Private: use from_joints / load_chain. ``exact`` holds the float64 CPU originals,
        # so converting a float32 chain to float64 loses nothing.
        check_dtype(f"chain {name!r}", dtype)
        device = check_device(device, meta=True)
        self.name = name
        self.env_defaults: Mapping[str, float | tuple[float, ...]] = MappingProxyType(dict(env_defaults or {}))
        self.base = base
        self.tip = tip
        self.joint_names = joint_names
        self.joint_types = joint_types
        self.dof = len(joint_names)
        self.dtype = dtype
        self.device = torch.device(device)
        self._exact = exact
        cast = {k: v.to(device=self.device, dtype=dtype) for k, v in exact.items() if v.is_floating_point()}
        # Rounded inward: a float32 value at its limit is then within the float64 limit too,
        # so a solution read in float64 never exceeds the URDF's limit by a rounding (2e-7 rad).
        self.lower = _rounded_inward(exact["lower"], dtype, up=True).to(self.device)
        self.upper = _rounded_inward(exact["upper"], dtype, up=False).to(self.device)
        self.continuous = exact["continuous"].to(self.device)
        # Local-transform coefficients, a constant and the factors of (cos q, sin q[, q]),
        # keyed by (to the tip?, batch last?): batch-last [n, 12, 1 or k] (rows 0-2),
        # batch-first [n, 1 or k, 16].
        self._coefficients = {
            (to_tip, last): (cast[f"{layout}_{end}"], cast[f"{layout}_{end}_k"])
            for to_tip, end in ((True, "tip"), (False, "joint"))
            for last, layout in ((True, "last"), (False, "first"))
        }
        self._to_tip = cast["to_tip"]  # [4, 4]: from the last joint's frame to the tip
        self._mimic_matrix = cast["mimic_matrix"]  # [n, dof]: joint values from q
        self._mimic_offset = cast["mimic_offset"]  # [n, 1]
        self._revolute = cast["revolute"]  # [n]: 1 for revolute/continuous, 0 for prismatic
        self._n = self._mimic_matrix.shape[0]
        self._has_prismatic = bool((exact["revolute"] == 0).any())
        self._identity_mimic = self._n == self.dof and bool(
            torch.equal(exact["mimic_matrix"], torch.eye(self.dof, dtype=torch.float64))
            and not exact["mimic_offset"].any()
        )
        self._bottom_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype, device=self.device)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_joints(
        cls,
        joints: Sequence[Joint],
        *,
        links: Iterable[str] | None = None,
        base: str | None = None,
        tip: str | None = None,
        name: str = "robot",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        source: str = "<chain>",
    ) -> Chain:
        """Build the chain from ``base`` to ``tip`` out of a robot's joints (a tree).

        ``joints`` describe the whole robot, in any order: each :class:`Joint` joins its
        ``parent`` link to its ``child`` link (a link is the child of at most one joint);
        joints off the path from ``base`` to ``tip`` are ignored, and only those on it need a
        supported type (:data:`SUPPORTED_JOINT_TYPES`). ``links`` adds link names no joint
        mentions (for messages). ``base`` defaults to the root link; ``tip`` to the only leaf
        of the movable chain (the child link of the one movable joint with no movable joint
        below it). Fixed joints after that link are not included: name a ``tip`` to include
        them. Poses are of the tip frame in the base frame (metres), ``q`` holds the actuated
        joints from base to tip (mimic joints follow theirs). ``name`` is the robot's name,
        ``dtype``/``device`` those of the chain's tensors (the constants stay float64), and
        ``source`` names where the joints came from, in error messages
        (:class:`~ikrl.errors.ChainError` and its subclasses).

        Examples:
            A planar arm: two turns about z, 0.5 m and 0.3 m links along x.

            >>> joints = [
            ...     Joint.from_xyz_rpy("shoulder", "revolute", "base", "upper", axis=(0, 0, 1), lower=-3, upper=3),
            ...     Joint.from_xyz_rpy("elbow", "revolute", "upper", "fore", xyz=(0.5, 0, 0), axis=(0, 0, 1), lower=-3, upper=3),
            ...     Joint.from_xyz_rpy("flange", "fixed", "fore", "tool", xyz=(0.3, 0, 0)),
            ... ]
            >>> arm = Chain.from_joints(joints, tip="tool", name="planar", dtype=torch.float64)
            >>> arm.joint_names, arm.base
            (('shoulder', 'elbow'), 'base')
            >>> arm.forward_kinematics(torch.tensor([0.0, math.pi / 2], dtype=torch.float64))[:3, 3].round(decimals=12).tolist()
            [0.5, 0.3, 0.0]
        """
        tree = _Tree(joints, links, source)
        base = tree.root() if base is None else tree.check_link(base, "base")
        tip = tree.default_tip(base) if tip is None else tree.check_link(tip, "tip")
        path = tree.path(base, tip)
        exact, names, types = _precompute(path, tree, source)
        return cls(
            name=name, base=base, tip=tip, joint_names=names, joint_types=types,
            exact=exact, dtype=dtype, device=device,
        )  # fmt: skip

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Chain:
        """A copy on another device and/or dtype (converted from the float64 originals)."""
        return Chain(
            name=self.name, base=self.base, tip=self.tip, joint_names=self.joint_names,
            joint_types=self.joint_types, exact=self._exact,
            dtype=self.dtype if dtype is None else dtype,
            device=self.device if device is None else device,
            env_defaults=self.env_defaults,
        )  # fmt: skip

    def with_env_defaults(
        self,
        *,
        position_tolerance: float | None = None,
        rotation_tolerance: float | None = None,
        max_delta: float | Sequence[float] | None = None,
    ) -> Chain:
        """A copy declaring what :func:`ikrl.make_env` uses when the user gives no value: the
        success tolerances (``position_tolerance`` in metres, ``rotation_tolerance`` in
        radians) and ``max_delta``, the largest joint change per step (radians or metres, one
        number or one per joint). Arguments left None keep what the chain declared before;
        the values are checked when an environment is built (a
        :class:`~ikrl.errors.PluginError` naming the robot and its distribution).

        Examples:
            >>> import ikrl_robots
            >>> chain = ikrl_robots.load("panda").with_env_defaults(position_tolerance=0.002)
            >>> chain.env_defaults["position_tolerance"]
            0.002
        """
        given = {"position_tolerance": position_tolerance, "rotation_tolerance": rotation_tolerance, "max_delta": max_delta}
        declared = {k: (tuple(v) if isinstance(v, Sequence) else v) for k, v in given.items() if v is not None}
        copy = self.to()
        copy.env_defaults = MappingProxyType({**self.env_defaults, **declared})
        return copy

    def __repr__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"Chain(name={self.name!r}, base={self.base!r}, tip={self.tip!r}, dof={self.dof}, "
            f"dtype={dtype}, device={self.device})"
        )

    # ------------------------------------------------------------------ identity

    def fingerprint(self) -> str:
        """A short hash of what decides the forward kinematics: base and tip links, joint names
        and types, limits, and the float64 joint-frame constants rounded to 1e-9.

        Equal for the same robot loaded twice, on any device or dtype; different when a joint
        origin, axis or limit changes by more than 1e-9 or when the base or tip link differ.
        """
        digest = hashlib.sha256()
        digest.update(repr((self.base, self.tip, self.joint_names, self.joint_types)).encode())
        for key in sorted(self._exact):
            value = self._exact[key].detach().to("cpu", torch.float64)
            digest.update(key.encode())
            digest.update(repr(tuple(value.shape)).encode())
            finite = torch.where(torch.isfinite(value), value, torch.zeros_like(value))
            rounded = torch.round(finite * 10**_FINGERPRINT_DECIMALS).to(torch.int64)
            digest.update(rounded.numpy().tobytes())
            digest.update(torch.isposinf(value).numpy().tobytes() + torch.isneginf(value).numpy().tobytes())
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ kinematics

    def forward_kinematics(self, q: Tensor) -> Tensor:
        """Pose of the tip in the base frame: ``q[..., dof] -> [..., 4, 4]``."""
        flat, lead = self._flatten(q)
        tip, _ = self._pass(flat, with_axes=False)
        assert tip is not None  # with_pose=True (the default) always returns it
        return tip.reshape(*lead, 4, 4)

    def forward_kinematics_and_trig(self, q: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """:meth:`forward_kinematics` and the ``(sin q, cos q)`` ``[..., dof]`` its pass computed
        on the way (None for a chain with mimic joints, whose pass takes the sines of other
        values): the environment hands them to its observation rather than compute them again.

        Examples:
            >>> import ikrl_robots
            >>> chain = ikrl_robots.load("ur5e")
            >>> q = torch.tensor([[0.1, -0.5, 0.3, 0.0, 1.0, -2.0]])
            >>> tip, (sin, cos) = chain.forward_kinematics_and_trig(q)
            >>> torch.equal(tip, chain.forward_kinematics(q)), torch.equal(sin, torch.sin(q)), torch.equal(cos, torch.cos(q))
            (True, True, True)
        """
        flat, lead = self._flatten(q)
        trig: list[Tensor] = []
        tip, _ = self._pass(flat, with_axes=False, trig=trig)
        assert tip is not None  # with_pose=True (the default) always returns it
        shared = (trig[0].reshape(q.shape), trig[1].reshape(q.shape)) if trig else None
        return tip.reshape(*lead, 4, 4), shared

    def jacobian(self, q: Tensor) -> Tensor:
        """Analytic Jacobian of the tip: ``q[..., dof] -> [..., 6, dof]``.

        Rows 0-2 are the linear velocity of the tip origin, rows 3-5 the angular velocity,
        both in the base frame, per unit velocity of each joint value. Where no gradient is
        wanted (float32 or float64 on the CPU), compiled code computes it in float64 and
        rounds once (:mod:`ikrl.kinematics.compiled`); otherwise differentiable torch does.
        """
        return self._jacobian(q, with_pose=False)[1]

    def forward_kinematics_and_jacobian(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Both :meth:`forward_kinematics` and :meth:`jacobian` from one pass over the chain."""
        pose, jac = self._jacobian(q, with_pose=True)
        assert pose is not None  # asked for
        return pose, jac

    def _jacobian(self, q: Tensor, *, with_pose: bool) -> tuple[Tensor | None, Tensor]:
        flat, lead = self._flatten(q)
        if compiled.usable(flat):
            # No gradient wanted: one compiled loop over the batch instead of a few dozen passes.
            pose, jac = compiled.jacobian(self, flat)
            return (pose.reshape(*lead, 4, 4) if with_pose else None), jac.reshape(*lead, 6, self.dof)
        tip, axes = self._pass(flat, with_axes=True, with_pose=with_pose)
        assert axes is not None  # with_axes=True always returns them
        z, p, tip_position = axes
        d = tip_position - p  # from each joint's axis point to the tip, [3, B, n]
        zx, zy, zz = z.unbind(0)
        dx, dy, dz = d.unbind(0)
        linear = [zy * dz - zz * dy, zz * dx - zx * dz, zx * dy - zy * dx]
        angular = [zx, zy, zz]
        if self._has_prismatic:
            revolute = self._revolute  # [n]: a prismatic joint moves along z, turns nothing
            linear = [revolute * lin + (1 - revolute) * ax for lin, ax in zip(linear, angular, strict=True)]
            angular = [revolute * ax for ax in angular]
        jac = torch.stack(linear + angular, 1)  # [B, 6, n]
        if not self._identity_mimic:
            jac = jac @ self._mimic_matrix
        pose = tip.reshape(*lead, 4, 4) if with_pose and tip is not None else None
        return pose, jac.reshape(*lead, 6, self.dof)

    def skeleton(self, q: Tensor) -> Tensor:
        """Points to draw the arm as a stick figure: ``q[..., dof] -> [..., n + 2, 3]``.

        The base origin, a point on each movable joint's axis (its frame origin), and the
        tip origin, in the base frame.
        """
        flat, lead = self._flatten(q)
        _, axes = self._pass(flat, with_axes=True)
        assert axes is not None  # with_axes=True always returns them
        _, p, tip_position = axes
        points = torch.cat([torch.zeros_like(tip_position), p, tip_position], -1)  # [3, B, n + 2]
        return points.permute(1, 2, 0).reshape(*lead, self._n + 2, 3)

    # ------------------------------------------------------------------ internals

    def _flatten(self, q: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        check_joints(self, q)
        return q.reshape(-1, self.dof), tuple(q.shape[:-1])

    def _pass(
        self, q: Tensor, *, with_axes: bool, with_pose: bool = True, trig: list[Tensor] | None = None
    ) -> tuple[Tensor | None, tuple[Tensor, Tensor, Tensor] | None]:
        """One pass down the chain for ``q[B, dof]``.

        Returns the tip pose ``[B, 4, 4]`` (None if not ``with_pose``) and, ``with_axes``,
        the world axis ``z`` and a world point ``p`` on the axis of every movable joint,
        ``[3, B, n]`` each, and the tip position ``[3, B, 1]``: components first, so both
        paths share the Jacobian code, and joints last, so the Jacobian comes out
        ``[B, 6, n]`` without a transpose. A ``trig`` list receives ``sin q`` and ``cos q``
        ``[B, dof]`` when the pass computes them (no mimic joints).

        The local transform of joint i is ``const + cos q C_c + sin q C_s (+ q C_q)``: one
        batched product with precomputed coefficients gives all of them. Joint frames have
        z along the joint axis, so the axis and a point on it are the frame's columns 2 and
        3. Small batches multiply 3x4 blocks with ``bmm``; large ones keep the batch last
        and multiply with rank-1 updates, several times faster than many tiny ``bmm``s.
        """
        batch = q.shape[0]
        n = self._n
        if self._identity_mimic:
            joint_values = q.T  # [n, B]
        else:
            joint_values = torch.addmm(self._mimic_offset, self._mimic_matrix, q.T)
        features = [torch.cos(joint_values), torch.sin(joint_values)]
        if trig is not None and self._identity_mimic:
            trig += [features[1].T, features[0].T]  # sin q, cos q [B, dof]: q.T's layout, transposed back
        if self._has_prismatic:
            features.append(joint_values)
        last = batch >= _BATCH_LAST_FROM
        # Forward kinematics alone folds the tip offset into the last joint.
        const, coeff = self._coefficients[(not with_axes, last)]
        axes = []  # [3, 2, B] each: joint i's axis and point, columns 2 and 3 of its frame
        if last:
            local = torch.baddbmm(const, coeff, torch.stack(features, 1)).view(n, 3, 4, batch)
            frame = local[0]
            for i in range(1, n):
                if with_axes:
                    axes.append(frame[:, 2:])
                frame = _rank1_product(frame, local[i])
            if with_axes:
                axes.append(frame[:, 2:])
                frame = _rank1_product(frame, self._to_tip[:3].unsqueeze(-1))
            tip_position = frame[:, 3].unsqueeze(-1)
            tip = None
            if with_pose:
                bottom = self._bottom_row.view(1, 4, 1).expand(1, 4, batch)
                tip = torch.cat([frame, bottom], 0).permute(2, 0, 1).contiguous()
        else:
            local = torch.baddbmm(const, torch.stack(features, -1), coeff).view(n, batch, 4, 4)
            frame = local[0, :, :3]
            for i in range(1, n):
                if with_axes:
                    axes.append(frame[:, :, 2:].permute(1, 2, 0))
                frame = frame @ local[i]
            if with_axes:
                axes.append(frame[:, :, 2:].permute(1, 2, 0))
                frame = frame @ self._to_tip
            tip = torch.cat([frame, self._bottom_row.expand(batch, 1, 4)], 1)
            tip_position = frame[:, :, 3].T.unsqueeze(-1)
        if not with_axes:
            return tip, None
        both = torch.stack(axes, -1)  # [3, 2, B, n]
        return tip, (both[:, 0], both[:, 1], tip_position)


#: Decimals kept when fingerprinting kinematic constants: far below any physical tolerance,
#: far above floating-point noise between platforms.
_FINGERPRINT_DECIMALS = 9
#: From this batch size on, kinematics keep the batch as the last dimension.
_BATCH_LAST_FROM = 256


def _rank1_product(frame: Tensor, local: Tensor) -> Tensor:
    """``frame @ [local; 0 0 0 1]`` for batch-last 3x4 blocks: ``[3, 4, B] x [3, 4, B or 1] -> [3, 4, B]``.

    ``local`` holds the top three rows of a homogeneous transform; its implicit bottom row
    only carries the frame's translation into column 3.
    """
    out = frame[:, 0:1] * local[0:1]
    out = torch.addcmul(out, frame[:, 1:2], local[1:2])
    out = torch.addcmul(out, frame[:, 2:3], local[2:3])
    out[:, 3] += frame[:, 3]
    return out


# ---------------------------------------------------------------------- structure


class _Tree:
    """The links and joints of a robot description, indexed for path queries."""

    def __init__(self, joints: Sequence[Joint], links: Iterable[str] | None, source: str) -> None:
        self.source = source
        self.joints = {}
        self.parent_joint: dict[str, Joint] = {}
        self.children: dict[str, list[Joint]] = {}
        for joint in joints:
            if joint.name in self.joints:
                raise ChainError(f"two joints are named {joint.name!r}; joint names must be unique", source=source)
            if joint.child in self.parent_joint:
                other = self.parent_joint[joint.child].name
                raise ChainError(
                    f"link {joint.child!r} is the child of two joints ({other!r}, {joint.name!r}); "
                    "a robot description must be a tree",
                    source=source,
                )
            self.joints[joint.name] = joint
            self.parent_joint[joint.child] = joint
            self.children.setdefault(joint.parent, []).append(joint)
        named = set(links) if links is not None else set()
        self.links = named | set(self.children) | set(self.parent_joint)
        if not self.links:
            raise ChainError("the robot has no links", source=source)

    def check_link(self, link: str, role: str) -> str:
        if link not in self.links:
            raise UnknownLinkError(link, role, self.links, source=self.source)
        return link

    def root(self) -> str:
        roots = sorted(link for link in self.links if link not in self.parent_joint)
        if len(roots) != 1:
            found = ", ".join(roots) if roots else "none (there is a cycle)"
            raise ChainError(
                f"expected one root link (a link that is no joint's child); found {found}. "
                "Pass base= to choose",
                source=self.source,
            )
        return roots[0]

    def default_tip(self, base: str) -> str:
        """The child link of the one movable joint below ``base`` with no movable joint below it."""
        ends = []
        stack = [base]
        while stack:
            for joint in self.children.get(stack.pop(), []):
                stack.append(joint.child)
                if joint.type != "fixed" and not self._has_movable_below(joint.child):
                    ends.append(joint)
        if not ends:
            raise ChainError(f"no movable joint below base link {base!r}; nothing to move", source=self.source)
        if len(ends) > 1:
            leaves = sorted(joint.child for joint in ends)
            common = self._common_ancestor(leaves)
            raise ChainError(
                f"cannot choose a default tip: below base link {base!r} the movable chain ends in "
                f"{len(leaves)} links ({', '.join(leaves)}). Pass tip= one of them, or a link "
                f"above them such as {common!r}",
                source=self.source,
            )
        return ends[0].child

    def _has_movable_below(self, link: str) -> bool:
        stack = [link]
        while stack:
            for joint in self.children.get(stack.pop(), []):
                if joint.type != "fixed":
                    return True
                stack.append(joint.child)
        return False

    def _ancestors(self, link: str) -> list[str]:
        """``link`` and the links above it, up to the root."""
        out = [link]
        seen = {link}
        while out[-1] in self.parent_joint:
            parent = self.parent_joint[out[-1]].parent
            if parent in seen:
                raise ChainError(f"the joints form a cycle through link {parent!r}", source=self.source)
            seen.add(parent)
            out.append(parent)
        return out

    def _common_ancestor(self, links: list[str]) -> str:
        shared = set(self._ancestors(links[0]))
        for link in links[1:]:
            shared &= set(self._ancestors(link))
        return next(link for link in self._ancestors(links[0]) if link in shared)

    def path(self, base: str, tip: str) -> list[Joint]:
        """The joints from ``base`` down to ``tip``, in order."""
        if base == tip:
            raise ChainError(f"base and tip are the same link ({base!r})", source=self.source)
        ancestors = self._ancestors(tip)
        if base not in ancestors:
            raise ChainError(
                f"tip link {tip!r} is not below base link {base!r} (the links above {tip!r} are "
                f"{', '.join(ancestors[1:]) or 'none'})",
                source=self.source,
            )
        links = ancestors[: ancestors.index(base)]
        return [self.parent_joint[link] for link in reversed(links)]

    def mimic_source(self, joint: Joint) -> tuple[Joint, float, float]:
        """The joint whose value drives ``joint``, with the composed multiplier and offset."""
        multiplier, offset = 1.0, 0.0
        seen = [joint.name]
        while joint.mimic is not None:
            mimic = joint.mimic
            if mimic.joint not in self.joints:
                raise ChainError(f"joint {joint.name!r} mimics unknown joint {mimic.joint!r}", source=self.source)
            source = self.joints[mimic.joint]
            if source.name in seen:
                raise ChainError(f"mimic joints form a cycle: {' -> '.join([*seen, source.name])}", source=self.source)
            if source.type not in ("revolute", "continuous", "prismatic"):
                raise ChainError(
                    f"joint {joint.name!r} mimics {source.name!r}, a {source.type} joint; "
                    "the mimicked joint must be revolute, continuous or prismatic",
                    source=self.source,
                )
            # q_joint = m * (m' * q_source + o') + o
            multiplier, offset = multiplier * mimic.multiplier, offset + multiplier * mimic.offset
            seen.append(source.name)
            joint = source
        return joint, multiplier, offset


def _check_joint(joint: Joint, source: str) -> tuple[float, float, float]:
    """Validate a joint on the path; returns its unit axis."""
    if joint.type not in SUPPORTED_JOINT_TYPES:
        raise UnsupportedJointError(
            f"joint {joint.name!r} is {joint.type!r}; a chain can only go through "
            f"{', '.join(SUPPORTED_JOINT_TYPES)} joints (choose a base and tip that avoid it)",
            source=source,
        )
    if tuple(joint.origin.shape) != (4, 4):
        raise ChainError(f"joint {joint.name!r}: origin must be a 4x4 pose, got {tuple(joint.origin.shape)}", source=source)
    if joint.type == "fixed":
        return (0.0, 0.0, 0.0)
    norm = math.sqrt(sum(a * a for a in joint.axis))
    if not norm > 1e-12 or not math.isfinite(norm):
        raise ChainError(f"joint {joint.name!r} has axis {joint.axis}; it needs a non-zero, finite axis", source=source)
    x, y, z = (a / norm for a in joint.axis)
    return (x, y, z)


def _turn_z_onto(axis: Tensor) -> Tensor:
    """A 4x4 rotation (float64) taking the z axis onto the unit vector ``axis``."""
    helper = torch.tensor([1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0], dtype=torch.float64)
    x = torch.linalg.cross(helper, axis)
    x = x / x.norm()
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, 0], turn[:3, 1], turn[:3, 2] = x, torch.linalg.cross(axis, x), axis
    return turn


def _limits(joint: Joint, source: str) -> tuple[float, float]:
    if joint.type == "continuous":
        return -math.inf, math.inf
    if joint.lower is None or joint.upper is None:
        raise ChainError(
            f"{joint.type} joint {joint.name!r} has no lower/upper limit; give both, "
            "or make it continuous if it turns freely",
            source=source,
        )
    if not (math.isfinite(joint.lower) and math.isfinite(joint.upper) and joint.lower <= joint.upper):
        raise ChainError(
            f"joint {joint.name!r} has limits [{joint.lower}, {joint.upper}]; they must be finite with lower <= upper",
            source=source,
        )
    return joint.lower, joint.upper


def _precompute(path: list[Joint], tree: _Tree, source: str) -> tuple[dict[str, Tensor], tuple[str, ...], tuple[str, ...]]:
    """Fold fixed joints and build the coefficient tensors (float64, CPU)."""
    f64 = torch.float64
    pending = torch.eye(4, dtype=f64)  # fixed transforms since the last movable joint
    movable: list[tuple[Joint, Tensor, Tensor]] = []  # (joint, origin incl. folded fixed, unit axis)
    for joint in path:
        axis = _check_joint(joint, source)
        origin = pending @ joint.origin.to(f64)
        if joint.type == "fixed":
            pending = origin
            continue
        movable.append((joint, origin, torch.tensor(axis, dtype=f64)))
        pending = torch.eye(4, dtype=f64)
    if not movable:
        raise ChainError(
            f"no movable joint between base {path[0].parent!r} and tip {path[-1].child!r}", source=source
        )
    tip_offset = pending

    # The actuated variables, in order of first appearance along the path.
    variables: list[Joint] = []
    var_index: dict[str, int] = {}
    drive: list[tuple[int, float, float]] = []  # per movable joint: (variable, multiplier, offset)
    for joint, _, _ in movable:
        src, multiplier, offset = tree.mimic_source(joint)
        if src.name not in var_index:
            _check_joint(src, source)
            var_index[src.name] = len(variables)
            variables.append(src)
        drive.append((var_index[src.name], multiplier, offset))

    n, dof = len(movable), len(variables)
    # Every joint frame is turned so that its z axis is the joint axis: joint i's local
    # transform is then P_i M(q_i), with M a turn about z (cos, sin) or a slide along z
    # (q), and P_i = R_{i-1}^T origin_i R_i (R_i turns z onto the axis). The frame after
    # joint i has the joint's world axis as column 2 and a point on it as column 3, so
    # the Jacobian needs nothing beyond the frames themselves.
    turn = [_turn_z_onto(a) for _, _, a in movable]
    const = torch.zeros(n, 4, 4, dtype=f64)
    coeff = torch.zeros(n, 3, 4, 4, dtype=f64)  # factors of cos q, sin q, q
    revolute = torch.zeros(n, dtype=f64)
    previous = torch.eye(4, dtype=f64)
    for i, (joint, origin, _) in enumerate(movable):
        fixed = previous.T @ origin @ turn[i]
        previous = turn[i]
        if joint.type == "prismatic":
            const[i] = fixed
            coeff[i, 2, :, 3] = fixed[:, 2]  # the origin slides along z
        else:
            # Rz(q) = diag(0, 0, 1, 1) + cos q diag(1, 1, 0, 0) + sin q (e1 e0^T - e0 e1^T)
            const[i, :, 2:] = fixed[:, 2:]
            coeff[i, 0, :, :2] = fixed[:, :2]
            coeff[i, 1, :, 0], coeff[i, 1, :, 1] = fixed[:, 1], -fixed[:, 0]
            revolute[i] = 1.0
    # From the last joint's frame to the tip; forward kinematics folds it into the last joint.
    to_tip = turn[-1].T @ tip_offset
    k = 3 if any(joint.type == "prismatic" for joint, _, _ in movable) else 2
    coeff = coeff[:, :k]
    const_tip, coeff_tip = const.clone(), coeff.clone()
    const_tip[-1] = const[-1] @ to_tip
    coeff_tip[-1] = coeff[-1] @ to_tip

    mimic_matrix = torch.zeros(n, dof, dtype=f64)
    mimic_offset = torch.zeros(n, 1, dtype=f64)
    for i, (var, multiplier, offset) in enumerate(drive):
        mimic_matrix[i, var] = multiplier
        mimic_offset[i, 0] = offset
    limits = torch.tensor([_limits(v, source) for v in variables], dtype=f64).reshape(dof, 2)

    def batch_last(t: Tensor) -> Tensor:  # [n, k, 4, 4] -> [n, 12, k]: rows 0-2 only
        return t[:, :, :3].reshape(n, t.shape[1], 12).transpose(1, 2).contiguous()

    def batch_first(t: Tensor) -> Tensor:  # [n, k, 4, 4] -> [n, k, 16]
        return t.reshape(n, t.shape[1], 16).contiguous()

    exact = {
        # Coefficients of the local transforms: to the tip (forward kinematics) or to the
        # last joint's frame (Jacobian), for the batch-last and the batch-first paths.
        "last_tip": batch_last(const_tip.unsqueeze(1)), "last_tip_k": batch_last(coeff_tip),
        "last_joint": batch_last(const.unsqueeze(1)), "last_joint_k": batch_last(coeff),
        "first_tip": batch_first(const_tip.unsqueeze(1)), "first_tip_k": batch_first(coeff_tip),
        "first_joint": batch_first(const.unsqueeze(1)), "first_joint_k": batch_first(coeff),
        "to_tip": to_tip,
        "mimic_matrix": mimic_matrix,
        "mimic_offset": mimic_offset,
        "revolute": revolute.reshape(n),
        "lower": limits[:, 0].contiguous(),
        "upper": limits[:, 1].contiguous(),
        "continuous": torch.tensor([v.type == "continuous" for v in variables], dtype=torch.bool),
    }
    return exact, tuple(v.name for v in variables), tuple(v.type for v in variables)


def _rounded_inward(exact: Tensor, dtype: torch.dtype, *, up: bool) -> Tensor:
    """``exact`` (float64, on the CPU) in ``dtype``, moved one step toward the inside where
    rounding took it outside: up for lower limits, down for upper ones. Infinities stay."""
    cast = exact.to(dtype)
    outside = cast.double() < exact if up else cast.double() > exact
    if not bool(outside.any()):
        return cast
    return torch.where(outside, torch.nextafter(cast, torch.full_like(cast, math.inf if up else -math.inf)), cast)

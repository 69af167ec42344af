"""ikrl's forward kinematics and Jacobians against Pinocchio, an independent implementation.

Covers the arms shipped in ``robots/``, arms from example-robot-data (UR3/5/10, Panda with
its prismatic and mimic fingers, Kinova with continuous joints, xArm7, Z1, SO-100/101,
TALOS arm and gripper mimic chain, TIAGo arm with its prismatic torso, PR2, iCub),
hand-written edge cases (one joint, mimic before its source, mimic chains) and random
URDFs (``tests/random_urdf.py``: non-unit axes, full-range rpy, prismatic, continuous,
fixed and mimic joints, side branches, bases that are not the root). Both batch code
paths are compared (below and from ``ikrl.kinematics.chain._BATCH_LAST_FROM`` = 256). The Jacobian
is also checked against central finite differences and autograd of ``forward_kinematics``.

Pinocchio treats mimic joints as independent joints: the reference sets each mimic
joint's value itself and folds its Jacobian column into its source's column.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ikrl

try:
    from .random_urdf import random_urdf
except ImportError:  # tests/ collected as a rootdir, not a package
    from random_urdf import random_urdf

import pinocchio as pin

REPO = Path(__file__).resolve().parents[1]

#: float64 tolerances against Pinocchio.
POSITION_TOL = 1e-9  # metres
ROTATION_TOL = 1e-9  # radians
JACOBIAN_TOL = 1e-8
#: float32 sanity tolerances (float32 has ~7 significant digits; arms are ~1 m long).
F32_POSITION_TOL = 1e-5
F32_ROTATION_TOL = 1e-5
F32_JACOBIAN_TOL = 1e-5
#: Central differences with step h: truncation ~h^2 |q'''| ~ 1e-12, rounding ~ eps/h ~ 1e-10.
FD_STEP = 1e-6
FD_TOL = 1e-7

SMALL_BATCH = 100
LARGE_BATCH = 300  # >= 256: the batch-last code path


def _erd_robots() -> Path:
    """example-robot-data's robots/ folder (a test extra: missing it must fail, not skip)."""
    dist = importlib.metadata.distribution("example-robot-data")
    path = Path(str(dist.locate_file("cmeel.prefix/share/example-robot-data/robots")))
    assert path.is_dir(), f"example-robot-data has no robots/ folder at {path}"
    return path


ERD = _erd_robots()


@dataclass(frozen=True)
class Arm:
    id: str
    path: str  # relative to REPO, or "erd:" + relative to example-robot-data's robots/
    base: str
    tip: str
    dof: int

    def file(self) -> Path:
        if self.path.startswith("erd:"):
            return ERD / self.path.removeprefix("erd:")
        return REPO / self.path

    def chain(self, dtype: torch.dtype = torch.float64) -> ikrl.Chain:
        return ikrl.load_chain(self.file(), base=self.base, tip=self.tip, dtype=dtype)

    def reference(self) -> Reference:
        return _reference(self.file(), self.base, self.tip)


ERD_PANDA = "erd:panda_description/urdf/panda.urdf"
ERD_TALOS = "erd:talos_data/robots/talos_reduced.urdf"
ERD_TIAGO = "erd:tiago_description/robots/tiago.urdf"
ERD_PR2 = "erd:pr2_description/urdf/pr2.urdf"
ERD_ICUB = "erd:icub_description/robots/icub.urdf"

CR5 = Arm("cr5", "robots/dobot_cr5/dobot_cr5.urdf", "base_link", "Link6", 6)
PANDA = Arm("panda", "robots/panda/panda.urdf", "panda_link0", "panda_link8", 7)
UR5E = Arm("ur5e", "robots/ur5e/ur5e.urdf", "base_link", "tool0", 6)
UR10 = Arm("erd-ur10", "erd:ur_description/urdf/ur10_robot.urdf", "base_link", "wrist_3_link", 6)

ARMS = [
    CR5,
    PANDA,
    UR5E,
    Arm("erd-ur3", "erd:ur_description/urdf/ur3_robot.urdf", "world", "tool0", 6),
    Arm("erd-ur5", "erd:ur_description/urdf/ur5_robot.urdf", "base_link", "ee_link", 6),
    UR10,
    Arm("erd-panda-hand-tcp", ERD_PANDA, "panda_link0", "panda_hand_tcp", 7),
    # Prismatic finger at the tip.
    Arm("erd-panda-left-finger", ERD_PANDA, "panda_link0", "panda_leftfinger", 8),
    # The right finger mimics the left one, which is not on the path base -> tip.
    Arm("erd-panda-right-finger", ERD_PANDA, "panda_link0", "panda_rightfinger", 8),
    # Continuous joints, and revolute limits beyond pi.
    Arm("erd-kinova", "erd:kinova_description/robots/kinova.urdf", "base", "j2s6s200_end_effector", 6),
    Arm("erd-xarm7", "erd:xarm_description/urdf/xarm7.urdf", "world", "link_eef", 7),
    Arm("erd-z1", "erd:z1_description/urdf/z1.urdf", "world", "gripperMover", 7),
    Arm("erd-so100", "erd:so_arm_description/urdf/so100.urdf", "base", "jaw", 6),
    Arm("erd-so101", "erd:so_arm_description/urdf/so101.urdf", "base_link", "gripper_frame_link", 5),
    # Base in the middle of a humanoid tree; the torso above it must not move it.
    Arm("erd-talos-left-arm", ERD_TALOS, "torso_2_link", "arm_left_7_link", 7),
    Arm("erd-talos-torso-right-arm", ERD_TALOS, "base_link", "wrist_right_ft_tool_link", 9),
    # Two mimic joints (multipliers 1 and -1) of the gripper joint, which is off the path.
    Arm("erd-talos-gripper-mimic", "erd:talos_data/robots/talos_full_v2.urdf", "torso_2_link",
        "gripper_left_fingertip_1_link", 8),
    # Prismatic torso lift, then the arm.
    Arm("erd-tiago-arm", ERD_TIAGO, "base_footprint", "hand_grasping_frame", 8),
    # A 15-joint chain: torso, arm and a finger.
    Arm("erd-tiago-index-finger", ERD_TIAGO, "base_footprint", "hand_index_flex_3_link", 15),
    # Prismatic torso, continuous forearm and wrist rolls, a finger tip mimicking the other
    # finger. Its file has an old-style <transmission> without <type>, which urdf-parser-py
    # rejects: ikrl hands it only links and joints.
    Arm("erd-pr2-right-finger", ERD_PR2, "base_link", "r_gripper_r_finger_tip_link", 9),
    # A <texture> without a file name, likewise ignored.
    Arm("erd-icub-right-arm", ERD_ICUB, "chest", "r_hand", 7),
]  # fmt: skip
PANDA_RIGHT_FINGER = next(arm for arm in ARMS if arm.id == "erd-panda-right-finger")



# ---------------------------------------------------------------------- the reference


def _mimics(xml: str) -> dict[str, tuple[str, float, float]]:
    """joint -> (mimicked joint, multiplier, offset), read from the XML independently of ikrl."""
    out = {}
    for joint in ET.fromstring(xml).iter("joint"):
        mimic = joint.find("mimic")
        if mimic is not None:
            out[joint.get("name")] = (
                mimic.get("joint"),
                float(mimic.get("multiplier", "1")),
                float(mimic.get("offset", "0")),
            )
    return out


class Reference:
    """Pinocchio's pose of ``tip`` in ``base`` and the matching ``[6, dof]`` Jacobian."""

    def __init__(self, xml: str, base: str, tip: str) -> None:
        self.model = pin.buildModelFromXML(xml)
        self.data = self.model.createData()
        self.mimics = _mimics(xml)
        model = self.model
        self.base_id = model.getFrameId(base, pin.BODY)
        self.tip_id = model.getFrameId(tip, pin.BODY)
        assert self.base_id < model.nframes and self.tip_id < model.nframes, (base, tip)
        base_joint = model.frames[self.base_id].parentJoint
        tip_joint = model.frames[self.tip_id].parentJoint
        above_base = set(model.supports[base_joint])
        assert base_joint in model.supports[tip_joint], "base must be above tip"
        #: Pinocchio joints between base and tip, base to tip.
        self.path = [j for j in model.supports[tip_joint] if j not in above_base]
        variables: list[str] = []
        for j in self.path:
            source = self.resolve(model.names[j])[0]
            if source not in variables:
                variables.append(source)
        self.variables = tuple(variables)
        self.index = {name: i for i, name in enumerate(variables)}

    def resolve(self, joint: str) -> tuple[str, float, float]:
        """(source, multiplier, offset) with ``value(joint) = multiplier * value(source) + offset``."""
        multiplier, offset = 1.0, 0.0
        while joint in self.mimics:
            source, m, o = self.mimics[joint]
            multiplier, offset = multiplier * m, offset + multiplier * o
            joint = source
        return joint, multiplier, offset

    def configuration(self, q: np.ndarray) -> np.ndarray:
        model = self.model
        q_pin = pin.neutral(model)
        for j in range(1, model.njoints):
            source, multiplier, offset = self.resolve(model.names[j])
            if source not in self.index:
                continue
            value = multiplier * q[self.index[source]] + offset
            joint = model.joints[j]
            if joint.nq == 2 and joint.nv == 1:  # continuous: (cos, sin)
                q_pin[joint.idx_q : joint.idx_q + 2] = (math.cos(value), math.sin(value))
            else:
                assert joint.nq == 1 and joint.nv == 1, model.names[j]
                q_pin[joint.idx_q] = value
        return q_pin

    def __call__(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``q[B, dof] -> (T[B, 4, 4], J[B, 6, dof])``."""
        model, data = self.model, self.data
        poses, jacobians = [], []
        for qi in q:
            q_pin = self.configuration(qi)
            pin.framesForwardKinematics(model, data, q_pin)
            base = data.oMf[self.base_id].copy()
            tip = data.oMf[self.tip_id].copy()
            full = pin.computeFrameJacobian(model, data, q_pin, self.tip_id, pin.LOCAL_WORLD_ALIGNED)
            full = np.asarray(full).reshape(6, model.nv)  # 6 x 1 comes back as shape (6,)
            jac = np.zeros((6, len(self.variables)))
            for j in self.path:
                source, multiplier, _ = self.resolve(model.names[j])
                jac[:, self.index[source]] += multiplier * full[:, model.joints[j].idx_v]
            r_base_t = base.rotation.T
            jac[:3] = r_base_t @ jac[:3]
            jac[3:] = r_base_t @ jac[3:]
            poses.append((base.inverse() * tip).homogeneous)
            jacobians.append(jac)
        return np.stack(poses), np.stack(jacobians)


@functools.cache
def _reference(path: Path, base: str, tip: str) -> Reference:
    return Reference(path.read_text(encoding="utf-8"), base, tip)


# ---------------------------------------------------------------------- helpers


def _vee(m):
    """The vector w of the antisymmetric part of ``m`` (numpy or torch): ``(m - m^T) / 2 = hat(w)``."""
    parts = (m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1])
    return 0.5 * (torch.stack(parts, -1) if isinstance(m, torch.Tensor) else np.stack(parts, -1))


def _sample(chain: ikrl.Chain, n: int, seed: int) -> torch.Tensor:
    """``n`` configurations within the limits ([-pi, pi] for continuous joints), float64."""
    gen = torch.Generator().manual_seed(seed)
    lower = torch.where(torch.isfinite(chain.lower), chain.lower, -math.pi).to(torch.float64)
    upper = torch.where(torch.isfinite(chain.upper), chain.upper, math.pi).to(torch.float64)
    u = torch.rand(n, chain.dof, generator=gen, dtype=torch.float64)
    return lower + u * (upper - lower)


def _rotation_angles(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Angle of ``R_a^T R_b`` per batch element, accurate for tiny angles (atan2, not acos)."""
    rel = np.swapaxes(r_a, -1, -2) @ r_b
    sin = np.linalg.norm(_vee(rel), axis=-1)  # _vee(R) = sin(angle) * axis
    cos = 0.5 * (np.trace(rel, axis1=-2, axis2=-1) - 1.0)
    return np.arctan2(sin, cos)


def _errors(pose, jac, ref_pose, ref_jac) -> tuple[float, float, float]:
    """Worst position error, rotation error and Jacobian entry error."""
    pose = pose.detach().cpu().to(torch.float64).numpy()
    position = np.linalg.norm(pose[:, :3, 3] - ref_pose[:, :3, 3], axis=-1).max()
    rotation = _rotation_angles(pose[:, :3, :3], ref_pose[:, :3, :3]).max()
    bottom = np.abs(pose[:, 3] - [0.0, 0.0, 0.0, 1.0]).max()
    assert bottom == 0.0, f"bottom row of the pose is not exactly (0, 0, 0, 1): off by {bottom}"
    jacobian = 0.0
    if jac is not None:
        jacobian = np.abs(jac.detach().cpu().to(torch.float64).numpy() - ref_jac).max()
    return float(position), float(rotation), float(jacobian)


def _check_against(
    chain: ikrl.Chain,
    ref: Reference,
    q: torch.Tensor,
    tols: tuple[float, float, float] = (POSITION_TOL, ROTATION_TOL, JACOBIAN_TOL),
    small: int = SMALL_BATCH,
) -> None:
    """Compare on ``q[:small]`` (small-batch code path) and all of ``q`` (large-batch path if >= 256)."""
    q_np = q.to(torch.float64).numpy()
    ref_pose, ref_jac = ref(q_np)
    position_tol, rotation_tol, jacobian_tol = tols
    for n in sorted({min(small, q.shape[0]), q.shape[0]}):
        qn = q[:n].to(chain.dtype)
        pose, jac = chain.forward_kinematics_and_jacobian(qn)
        assert pose.shape == (n, 4, 4) and jac.shape == (n, 6, chain.dof)
        assert pose.dtype == chain.dtype and jac.dtype == chain.dtype
        # With a gradient to track, the differentiable tensor path; without, the compiled one.
        tracked_pose, tracked_jac = chain.forward_kinematics_and_jacobian(qn.clone().requires_grad_(True))
        assert tracked_jac.requires_grad
        for what, p, j in (
            ("forward_kinematics_and_jacobian", pose, jac),
            ("forward_kinematics_and_jacobian with a gradient", tracked_pose, tracked_jac),
            ("forward_kinematics", chain.forward_kinematics(qn), None),
            ("jacobian", pose, chain.jacobian(qn)),
        ):
            position, rotation, jacobian = _errors(p, j, ref_pose[:n], ref_jac[:n])
            where = f"{what}, batch {n}"
            assert position <= position_tol, f"{where}: position error {position:.3g} m"
            assert rotation <= rotation_tol, f"{where}: rotation error {rotation:.3g} rad"
            assert jacobian <= jacobian_tol, f"{where}: Jacobian error {jacobian:.3g}"


def test_rotation_angle_metric() -> None:
    """The harness's own angle measure is right, down to tiny angles (where acos would not be)."""
    rng = np.random.default_rng(0)
    for angle in (0.0, 1e-12, 1e-9, 1e-5, 0.3, 2.0, math.pi - 1e-3):
        axis = rng.normal(size=3)
        r_a = pin.exp3(rng.normal(size=3))
        r_b = r_a @ pin.exp3(angle * axis / np.linalg.norm(axis))
        assert _rotation_angles(r_a[None], r_b[None])[0] == pytest.approx(angle, rel=1e-6, abs=1e-15)


# ---------------------------------------------------------------------- real arms


@pytest.mark.parametrize("arm", ARMS, ids=lambda arm: arm.id)
def test_arm_matches_pinocchio(arm: Arm) -> None:
    chain = arm.chain()
    ref = arm.reference()
    assert chain.dof == arm.dof
    assert chain.joint_names == ref.variables
    _check_against(chain, ref, _sample(chain, LARGE_BATCH, seed=0))


@pytest.mark.parametrize("arm", ARMS, ids=lambda arm: arm.id)
def test_arm_limits_match_pinocchio(arm: Arm) -> None:
    chain = arm.chain()
    model = arm.reference().model
    for i, name in enumerate(chain.joint_names):
        joint = model.joints[model.getJointId(name)]
        if joint.nq == 2:  # continuous
            assert chain.continuous[i], name
            assert chain.lower[i] == -math.inf and chain.upper[i] == math.inf, name
        else:
            assert not chain.continuous[i], name
            assert chain.lower[i].item() == model.lowerPositionLimit[joint.idx_q], name
            assert chain.upper[i].item() == model.upperPositionLimit[joint.idx_q], name


@pytest.mark.parametrize("arm", [CR5, UR10], ids=lambda arm: arm.id)
def test_float32_matches_pinocchio(arm: Arm) -> None:
    chain = ikrl.load_chain(arm.file(), base=arm.base, tip=arm.tip)  # float32 by default
    assert chain.dtype == torch.float32
    _check_against(chain, arm.reference(), _sample(chain, LARGE_BATCH, seed=1),
                   tols=(F32_POSITION_TOL, F32_ROTATION_TOL, F32_JACOBIAN_TOL))  # fmt: skip


@pytest.mark.parametrize("arm", [CR5, UR10], ids=lambda arm: arm.id)
def test_float32_chain_converted_to_float64_is_exact(arm: Arm) -> None:
    """``.to(float64)`` rebuilds from the float64 originals: full float64 accuracy."""
    chain = arm.chain(torch.float32).to(dtype=torch.float64)
    assert chain.dtype == torch.float64 and chain.lower.dtype == torch.float64
    _check_against(chain, arm.reference(), _sample(chain, LARGE_BATCH, seed=2))


@pytest.mark.parametrize("arm", [CR5, PANDA_RIGHT_FINGER], ids=lambda arm: arm.id)
def test_leading_shapes_match_pinocchio(arm: Arm) -> None:
    """``q[dof]`` and ``q[a, b, dof]`` give the same numbers as a flat batch; so does ``q[0, dof]``."""
    chain = arm.chain()
    q = _sample(chain, 12, seed=3)
    ref_pose, ref_jac = arm.reference()(q.numpy())
    pose, jac = chain.forward_kinematics_and_jacobian(q[0])
    assert pose.shape == (4, 4) and jac.shape == (6, chain.dof)
    position, rotation, jacobian = _errors(pose[None], jac[None], ref_pose[:1], ref_jac[:1])
    assert position <= POSITION_TOL and rotation <= ROTATION_TOL and jacobian <= JACOBIAN_TOL
    pose, jac = chain.forward_kinematics_and_jacobian(q.reshape(3, 4, chain.dof))
    assert pose.shape == (3, 4, 4, 4) and jac.shape == (3, 4, 6, chain.dof)
    pose, jac = pose.reshape(12, 4, 4), jac.reshape(12, 6, chain.dof)
    position, rotation, jacobian = _errors(pose, jac, ref_pose, ref_jac)
    assert position <= POSITION_TOL and rotation <= ROTATION_TOL and jacobian <= JACOBIAN_TOL
    pose, jac = chain.forward_kinematics_and_jacobian(q[:0])
    assert pose.shape == (0, 4, 4) and jac.shape == (0, 6, chain.dof)


# ---------------------------------------------------------------------- hand-written edge cases


def _robot(*joints: tuple) -> str:
    """A URDF of ``(name, type, parent, child[, (mimicked, multiplier, offset)])`` joints, all
    with the same skewed origin and non-unit axis."""
    links, body = set(), []
    for name, joint_type, parent, child, *mimic in joints:
        links |= {parent, child}
        body.append(
            f'<joint name="{name}" type="{joint_type}"><parent link="{parent}"/><child link="{child}"/>'
            '<origin xyz="0.1 0.2 0.3" rpy="0.3 -0.7 1.1"/><axis xyz="0.3 -1 2"/>'
            '<limit lower="-1" upper="1" effort="1" velocity="1"/>'
        )
        if mimic:
            ((source, multiplier, offset),) = mimic
            body.append(f'<mimic joint="{source}" multiplier="{multiplier}" offset="{offset}"/>')
        body.append("</joint>")
    links_xml = "".join(f'<link name="{link}"/>' for link in sorted(links))
    return f'<robot name="edge">{links_xml}{"".join(body)}</robot>'


EDGE_CASES = {
    # name: (xml, base, tip, expected joint_names)
    "single-revolute": (_robot(("j", "revolute", "a", "b")), "a", "b", ("j",)),
    "single-continuous": (_robot(("j", "continuous", "a", "b")), "a", "b", ("j",)),
    "single-prismatic": (_robot(("j", "prismatic", "a", "b")), "a", "b", ("j",)),
    "fixed-movable-fixed": (
        _robot(("f0", "fixed", "a", "b"), ("j", "prismatic", "b", "c"), ("f1", "fixed", "c", "d")),
        "a", "d", ("j",),
    ),
    "mimic-before-its-source": (
        _robot(("j1", "revolute", "a", "b", ("j2", -1.5, 0.4)), ("j2", "prismatic", "b", "c")),
        "a", "c", ("j2",),
    ),
    "all-mimic-of-off-path-joint": (
        _robot(("j1", "continuous", "a", "b", ("s", 2.0, 0.4)),
               ("j2", "prismatic", "b", "c", ("s", 0.1, 0.0)),
               ("s", "revolute", "a", "d")),
        "a", "c", ("s",),
    ),
    "mimic-of-joint-above-base": (
        _robot(("j0", "revolute", "a", "b"), ("j1", "revolute", "b", "c", ("j0", 2.0, 0.0)),
               ("j2", "revolute", "c", "d")),
        "b", "d", ("j0", "j2"),
    ),
    "mimic-of-mimic-of-mimic": (
        _robot(("j0", "revolute", "a", "b"), ("j1", "prismatic", "b", "c", ("j0", 2.0, 1.0)),
               ("j2", "continuous", "c", "d", ("j1", -0.5, 0.3)),
               ("j3", "revolute", "d", "e", ("j2", 3.0, -2.0))),
        "a", "e", ("j0",),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_case_matches_pinocchio(case) -> None:
    xml, base, tip, names = case
    chain = ikrl.load_chain(xml, base=base, tip=tip, dtype=torch.float64)
    ref = Reference(xml, base, tip)
    assert chain.joint_names == ref.variables == names
    q = _sample(chain, LARGE_BATCH, seed=5)
    _check_against(chain, ref, q)
    for n in (1, 255, 256):  # around the switch between the two batch code paths
        _check_against(chain, ref, q[:n], small=n)


# ---------------------------------------------------------------------- random robots

RANDOM_SEEDS = range(30)


def _random_case(seed: int) -> tuple[ikrl.Chain, Reference]:
    robot = random_urdf(seed)
    chain = ikrl.load_chain(robot.xml, base=robot.base, tip=robot.tip, dtype=torch.float64)
    ref = Reference(robot.xml, robot.base, robot.tip)
    assert [ref.model.names[j] for j in ref.path] == robot.path_joints  # the reference's path is right
    assert chain.joint_names == ref.variables
    return chain, ref


@pytest.mark.parametrize("seed", RANDOM_SEEDS, ids=lambda s: f"seed{s}")
def test_random_urdf_matches_pinocchio(seed: int) -> None:
    chain, ref = _random_case(seed)
    _check_against(chain, ref, _sample(chain, LARGE_BATCH, seed=seed))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63))
def test_random_urdf_matches_pinocchio_hypothesis(seed: int) -> None:
    """More random robots on every run (a failure prints the seed to replay with random_urdf)."""
    chain, ref = _random_case(seed)
    _check_against(chain, ref, _sample(chain, LARGE_BATCH, seed=seed % 2**32))


def test_random_urdfs_cover_the_interesting_cases() -> None:
    """The seeds above exercise every feature the generator can produce."""
    seen: set[str] = set()
    for seed in RANDOM_SEEDS:
        robot = random_urdf(seed)
        types = {j.get("name"): j.get("type") for j in ET.fromstring(robot.xml).iter("joint")}
        seen |= {f"path:{types[name]}" for name in robot.path_joints}
        seen |= {f"off-path:{t}" for name, t in types.items() if name not in robot.path_joints}
        if robot.mimics:
            seen.add("mimic")
        if any(source not in robot.path_joints for source, _, _ in robot.mimics.values()):
            seen.add("mimic of an off-path joint")
        if any(source in robot.mimics for source, _, _ in robot.mimics.values()):
            seen.add("mimic of a mimic")
        if types.get("root_to_base", "fixed") != "fixed":
            seen.add("moving base")
        if len(robot.path_joints) == 8:
            seen.add("8 movable joints")
    expected = {
        *(f"path:{t}" for t in ("revolute", "continuous", "prismatic")),
        *(f"off-path:{t}" for t in ("revolute", "continuous", "prismatic", "fixed", "floating", "planar")),
        "mimic", "mimic of an off-path joint", "mimic of a mimic", "moving base", "8 movable joints",
    }  # fmt: skip
    assert expected <= seen, f"never generated: {sorted(expected - seen)}"


def test_random_urdf_is_deterministic() -> None:
    assert random_urdf(7).xml == random_urdf(7).xml == random_urdf(random.Random(7)).xml
    assert random_urdf(7).xml != random_urdf(8).xml


# ---------------------------------------------------------------------- finite differences, autograd


def _finite_difference_jacobian(chain: ikrl.Chain, q: torch.Tensor, h: float = FD_STEP) -> torch.Tensor:
    """Central differences of forward kinematics: linear rows from d(position)/dq, angular
    rows from w = vee(dR/dq R^T) (in the base frame, dR/dq = hat(w) R)."""
    n, dof = q.shape
    step = h * torch.eye(dof, dtype=q.dtype)
    plus = chain.forward_kinematics((q[:, None] + step).reshape(-1, dof)).reshape(n, dof, 4, 4)
    minus = chain.forward_kinematics((q[:, None] - step).reshape(-1, dof)).reshape(n, dof, 4, 4)
    d = (plus - minus) / (2 * h)  # [n, dof, 4, 4]
    rotation = chain.forward_kinematics(q)[:, None, :3, :3]
    angular = _vee(d[..., :3, :3] @ rotation.transpose(-1, -2))
    return torch.cat([d[..., :3, 3], angular], -1).transpose(1, 2)  # [n, 6, dof]


def _autograd_jacobian(chain: ikrl.Chain, q: torch.Tensor) -> torch.Tensor:
    """The same from torch.autograd through forward_kinematics: one backward pass per pose entry."""
    q = q.clone().requires_grad_(True)
    pose = chain.forward_kinematics(q)
    d = torch.zeros(q.shape[0], chain.dof, 3, 4, dtype=q.dtype)  # d pose[:3, :] / dq
    for r in range(3):
        for c in range(4):
            (d[:, :, r, c],) = torch.autograd.grad(pose[:, r, c].sum(), q, retain_graph=True)
    angular = _vee(d[..., :3] @ pose[:, None, :3, :3].detach().transpose(-1, -2))
    return torch.cat([d[..., 3], angular], -1).transpose(1, 2)


def _random_seeds_with_prismatic_and_mimic(count: int = 4) -> list[int]:
    seeds = []
    for seed in range(1000):
        robot = random_urdf(seed)
        types = {j.get("name"): j.get("type") for j in ET.fromstring(robot.xml).iter("joint")}
        if robot.mimics and any(types[name] == "prismatic" for name in robot.path_joints):
            seeds.append(seed)
            if len(seeds) == count:
                break
    return seeds


DERIVATIVE_CASES = [
    pytest.param(CR5, id="cr5"),
    pytest.param(PANDA, id="panda"),
    pytest.param(PANDA_RIGHT_FINGER, id="erd-panda-right-finger"),
    *(pytest.param(seed, id=f"random-seed{seed}") for seed in _random_seeds_with_prismatic_and_mimic()),
]


def _derivative_case(case: Arm | int) -> ikrl.Chain:
    if isinstance(case, Arm):
        return case.chain()
    robot = random_urdf(case)
    return ikrl.load_chain(robot.xml, base=robot.base, tip=robot.tip, dtype=torch.float64)


@pytest.mark.parametrize("case", DERIVATIVE_CASES)
def test_jacobian_matches_finite_differences(case) -> None:
    chain = _derivative_case(case)
    q = _sample(chain, 20, seed=4)
    expected = _finite_difference_jacobian(chain, q)
    for batch in (q, q.repeat(LARGE_BATCH // 20, 1)):  # both batch code paths of the Jacobian
        error = (chain.jacobian(batch)[:20] - expected).abs().max().item()
        assert error <= FD_TOL, f"batch {batch.shape[0]}: Jacobian - finite differences = {error:.3g}"


@pytest.mark.parametrize("case", DERIVATIVE_CASES)
def test_jacobian_matches_autograd(case) -> None:
    """forward_kinematics is differentiable, on both batch code paths, and its gradient is the Jacobian."""
    chain = _derivative_case(case)
    q = _sample(chain, LARGE_BATCH, seed=6)
    for batch in (q[:SMALL_BATCH], q):
        error = (chain.jacobian(batch) - _autograd_jacobian(chain, batch)).abs().max().item()
        assert error <= JACOBIAN_TOL, f"batch {batch.shape[0]}: Jacobian differs from autograd by {error:.3g}"

"""Building robots in Python: ``Joint.from_xyz_rpy`` against the URDF loader, ``Joint.from_dh``
against closed-form DH products written here in numpy (modified and standard), and the
environment defaults a chain declares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ikrl
from ikrl import Chain, Joint
from ikrl.errors import ChainError


def random_tree_joints(seed: int) -> tuple[list[dict], np.random.Generator]:
    """Six joints of every movable type plus fixed ones, with random origins and axes."""
    rng = np.random.default_rng(seed)
    types = ["revolute", "continuous", "fixed", "prismatic", "revolute", "fixed"]
    rows = []
    for i, kind in enumerate(types):
        rows.append(
            {
                "name": f"j{i}", "type": kind, "parent": f"l{i}", "child": f"l{i + 1}",
                "xyz": [float(v) for v in rng.uniform(-0.4, 0.4, 3)],
                "rpy": [float(v) for v in rng.uniform(-math.pi, math.pi, 3)],
                "axis": [float(v) for v in rng.normal(size=3)],
                "lower": -1.5 if kind != "prismatic" else -0.2, "upper": 1.5 if kind != "prismatic" else 0.3,
            }
        )  # fmt: skip
    return rows, rng


def as_urdf(rows: list[dict]) -> str:
    """The URDF text of ``rows``, every number written with repr (exact in float64)."""
    links = "".join(f'<link name="l{i}"/>' for i in range(len(rows) + 1))
    joints = []
    for r in rows:
        limit = f'<limit lower="{r["lower"]!r}" upper="{r["upper"]!r}" effort="1" velocity="1"/>' if r["type"] in ("revolute", "prismatic") else ""
        joints.append(
            f'<joint name="{r["name"]}" type="{r["type"]}"><parent link="{r["parent"]}"/><child link="{r["child"]}"/>'
            f'<origin xyz="{" ".join(map(repr, r["xyz"]))}" rpy="{" ".join(map(repr, r["rpy"]))}"/>'
            f'<axis xyz="{" ".join(map(repr, r["axis"]))}"/>{limit}</joint>'
        )
    return f'<?xml version="1.0"?><robot name="random">{links}{"".join(joints)}</robot>'


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF's rpy, written out: Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("seed", range(5))
def test_from_xyz_rpy_gives_the_urdf_loader_s_chain(seed):
    rows, rng = random_tree_joints(seed)
    joints = [
        Joint.from_xyz_rpy(r["name"], r["type"], r["parent"], r["child"], xyz=r["xyz"], rpy=r["rpy"], axis=r["axis"],
                           lower=r["lower"] if r["type"] in ("revolute", "prismatic") else None,
                           upper=r["upper"] if r["type"] in ("revolute", "prismatic") else None)
        for r in rows
    ]  # fmt: skip
    for joint, r in zip(joints, rows, strict=True):
        np.testing.assert_allclose(joint.origin[:3, :3].numpy(), rpy_matrix(*r["rpy"]), atol=1e-15, rtol=0)
        assert joint.origin[:3, 3].tolist() == r["xyz"]
    built = Chain.from_joints(joints, base="l0", tip="l6", dtype=torch.float64)
    loaded = ikrl.load_chain(as_urdf(rows), base="l0", tip="l6", dtype=torch.float64)
    assert (built.joint_names, built.joint_types) == (loaded.joint_names, loaded.joint_types)
    assert torch.equal(built.lower, loaded.lower) and torch.equal(built.upper, loaded.upper)
    assert built.fingerprint() == loaded.fingerprint()
    q = torch.from_numpy(rng.uniform(-1.5, 1.5, (32, built.dof)))
    pose, jac = built.forward_kinematics_and_jacobian(q)
    pose_urdf, jac_urdf = loaded.forward_kinematics_and_jacobian(q)
    torch.testing.assert_close(pose, pose_urdf, atol=1e-12, rtol=0)
    torch.testing.assert_close(jac, jac_urdf, atol=1e-12, rtol=0)


def modified_dh(q: np.ndarray, a, alpha, d, theta) -> np.ndarray:
    """Craig's product: prod_i Rx(alpha_i) Tx(a_i) Rz(theta_i + q_i) Tz(d_i), written out."""
    pose = np.eye(4)
    for qi, ai, al, di, th in zip(q, a, alpha, d, theta, strict=True):
        ct, st, ca, sa = math.cos(th + qi), math.sin(th + qi), math.cos(al), math.sin(al)
        pose = pose @ np.array([[ct, -st, 0, ai], [st * ca, ct * ca, -sa, -sa * di], [st * sa, ct * sa, ca, ca * di], [0, 0, 0, 1]])
    return pose


def standard_dh(q: np.ndarray, a, alpha, d, theta) -> np.ndarray:
    """The classic product: prod_i Rz(theta_i + q_i) Tz(d_i) Tx(a_i) Rx(alpha_i), written out."""
    pose = np.eye(4)
    for qi, ai, al, di, th in zip(q, a, alpha, d, theta, strict=True):
        ct, st, ca, sa = math.cos(th + qi), math.sin(th + qi), math.cos(al), math.sin(al)
        pose = pose @ np.array([[ct, -st * ca, st * sa, ai * ct], [st, ct * ca, -ct * sa, ai * st], [0, sa, ca, di], [0, 0, 0, 1]])
    return pose


def test_from_dh_is_one_row_of_a_modified_dh_table():
    rng = np.random.default_rng(0)
    n = 6
    a, d = rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n)
    alpha, theta = rng.uniform(-math.pi, math.pi, n), rng.uniform(-math.pi, math.pi, n)
    joints = [
        Joint.from_dh(f"j{i}", "revolute", f"l{i}", f"l{i + 1}", a=a[i], alpha=alpha[i], d=d[i], theta=theta[i], lower=-3, upper=3)
        for i in range(n)
    ]
    chain = Chain.from_joints(joints, dtype=torch.float64)
    for q in rng.uniform(-3, 3, (20, n)):
        np.testing.assert_allclose(chain.forward_kinematics(torch.from_numpy(q)).numpy(), modified_dh(q, a, alpha, d, theta), atol=1e-12, rtol=0)


def test_a_prismatic_dh_joint_moves_d():
    joints = [
        Joint.from_dh("turn", "revolute", "base", "l1", d=0.2, lower=-3, upper=3),
        Joint.from_dh("slide", "prismatic", "l1", "l2", a=0.1, alpha=math.pi / 2, theta=0.3, d=0.05, lower=0, upper=0.5),
    ]
    chain = Chain.from_joints(joints, dtype=torch.float64)
    for q in ([0.0, 0.0], [0.7, 0.2], [-1.2, 0.45]):
        expected = modified_dh([q[0], 0.0], [0.0, 0.1], [0.0, math.pi / 2], [0.2, 0.05 + q[1]], [0.0, 0.3])
        np.testing.assert_allclose(chain.forward_kinematics(torch.tensor(q, dtype=torch.float64)).numpy(), expected, atol=1e-12, rtol=0)


def ur5e_from_standard_dh() -> Chain:
    """The UR5e from UR's published standard DH table, one row shifted for Joint.from_dh."""
    h = math.pi / 2
    a = [0.0, -0.425, -0.3922, 0.0, 0.0, 0.0]  # metres
    alpha = [h, 0.0, 0.0, h, -h, 0.0]  # radians
    d = [0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996]  # metres
    joints = [
        Joint.from_dh(f"joint{i + 1}", "revolute", f"link{i}", f"link{i + 1}",
                      a=a[i - 1] if i else 0.0, alpha=alpha[i - 1] if i else 0.0, d=d[i],
                      lower=-2 * math.pi, upper=2 * math.pi)
        for i in range(6)
    ]  # fmt: skip
    joints.append(Joint.from_dh("flange", "fixed", "link6", "flange", a=a[5], alpha=alpha[5]))
    return Chain.from_joints(joints, base="link0", tip="flange", name="ur5e_dh", dtype=torch.float64)


def test_a_standard_dh_table_is_the_same_chain_with_a_and_alpha_one_row_earlier():
    chain = ur5e_from_standard_dh()
    h = math.pi / 2
    table = {"a": [0, -0.425, -0.3922, 0, 0, 0], "alpha": [h, 0, 0, h, -h, 0], "d": [0.1625, 0, 0, 0.1333, 0.0997, 0.0996], "theta": [0] * 6}
    rng = np.random.default_rng(1)
    for q in rng.uniform(-math.pi, math.pi, (20, 6)):
        np.testing.assert_allclose(chain.forward_kinematics(torch.from_numpy(q)).numpy(), standard_dh(q, **table), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Joint.from_xyz_rpy("j", "fixed", "a", "b", xyz=(0, 0)), r"Joint.from_xyz_rpy\('j'\): xyz must be 3 finite numbers \(metres\); got \(0, 0\)"),
        (lambda: Joint.from_xyz_rpy("j", "fixed", "a", "b", rpy=(0, math.nan, 0)), r"Joint.from_xyz_rpy\('j'\): rpy must be a finite number \(radians\); got nan"),
        (lambda: Joint.from_xyz_rpy("j", "fixed", "a", "b", axis="z"), r"axis must be 3 finite numbers \(a direction\); got 'z'"),
        (lambda: Joint.from_dh("j", "revolute", "a", "b", alpha=math.inf), r"Joint.from_dh\('j'\): alpha must be a finite number \(radians\); got inf"),
        (lambda: Joint.from_dh("j", "revolute", "a", "b", d="0.1"), r"d must be a finite number \(metres\); got '0.1'"),
        (lambda: Joint.from_dh("j", "revolute", "a", "b", lower=True), r"lower must be a finite number \(radians or metres\); got True"),
    ],
    ids=["xyz-length", "rpy-nan", "axis-string", "alpha-inf", "d-string", "lower-bool"],
)
def test_the_helpers_refuse_what_is_not_a_number(build, message):
    with pytest.raises(ChainError, match=message):
        build()


def test_a_chain_s_declared_defaults_survive_to_and_merge():
    chain = ur5e_from_standard_dh()
    assert dict(chain.env_defaults) == {}
    declared = chain.with_env_defaults(position_tolerance=0.002).with_env_defaults(max_delta=[0.1] * 6)
    assert dict(declared.env_defaults) == {"position_tolerance": 0.002, "max_delta": (0.1,) * 6}
    assert dict(declared.to(dtype=torch.float32).env_defaults) == dict(declared.env_defaults)
    assert dict(chain.env_defaults) == {}  # a copy: the original declares nothing
    assert declared.fingerprint() == chain.fingerprint()  # defaults are no kinematics
    with pytest.raises(TypeError):
        declared.env_defaults["position_tolerance"] = 1.0  # type: ignore[index]

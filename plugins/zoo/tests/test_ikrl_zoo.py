"""ikrl-zoo's own tests: what its author checks before publishing.

Run with the plugin installed (``pip install -e ".[test]"``, then ``pytest`` here): the robots
are found through the entry point, as ikrl finds them on a user's machine, and every one is
compared with Pinocchio reading the same URDF file (``pinocchio_reference``).
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from ikrl_zoo import catalog, data
from ikrl_zoo.catalog import ZooRobot
from ikrl_zoo.robots import MAX_REVOLUTE_RANGE, build_chain, check_ranges, soft_limits_of
from pinocchio_reference import SubChain, rotation_angles
from torchrl.envs.utils import check_env_specs
from typer.testing import CliRunner

import ikrl
from ikrl.cli.app import app
from ikrl.errors import BadParameterError, ChainError, MissingDependencyError
from ikrl.extend.plugins import load_plugins
from ikrl.extend.registry import Registry, default_registry

NAMES = catalog.names()
#: ikrl-example's robots: not installed with the zoo, but a user may have both.
EXAMPLE_ROBOTS = {"toy_arm", "toy_arm_py"}
#: float64 agreement with Pinocchio.
POSITION_TOL, ROTATION_TOL, JACOBIAN_TOL = 1e-9, 1e-9, 1e-8  # metres, radians, entries
README = Path(__file__).resolve().parents[1] / "README.md"


def _chain(name: str, **params) -> ikrl.Chain:
    """The chain the plugin hands ikrl for ``name`` (through the registry: the entry point)."""
    return default_registry().robot(name).build(params)


def _sample(chain: ikrl.Chain, n: int, seed: int) -> torch.Tensor:
    """``n`` joint values uniform within the limits ([-pi, pi] for continuous joints), float64."""
    lower = torch.where(chain.continuous, -math.pi, chain.lower).double()
    upper = torch.where(chain.continuous, math.pi, chain.upper).double()
    return lower + (upper - lower) * torch.rand(n, chain.dof, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------- the catalogue, found


def test_every_robot_is_found_through_the_entry_point():
    registry = default_registry()
    found = {c.name: c.distribution for c in registry.components() if c.kind == "robot" and c.distribution == "ikrl-zoo"}
    assert sorted(found) == sorted(NAMES) and len(found) >= 10
    # ikrl refuses two plugins with one name, so the names must differ from ikrl's own.
    ikrl_own = Registry.from_plugins(load_plugins(autoload=False)).names("robot")
    assert "panda" in ikrl_own and not set(NAMES) & (set(ikrl_own) | EXAMPLE_ROBOTS)


def test_ikrl_list_shows_the_zoo_s_robots():
    import json

    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output) if row["kind"] == "robot"}
    assert all(rows[name]["distribution"] == "ikrl-zoo" for name in NAMES)
    assert rows["pr2_left_arm"]["parameters"] == {"soft_limits": False} and rows["ur10"]["parameters"] == {}


def test_the_readme_and_the_docstrings_describe_every_robot():
    table = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| `([^`]+)` \| `([^`]+)` \| `([^`]+)` \| (\d+) \|$", README.read_text(), re.M)}
    assert table == {r.name: (r.urdf, r.base, r.tip, str(r.dof)) for r in catalog.robots()}
    factory = default_registry().robot("tiago_arm").factory
    assert factory.__doc__.startswith("PAL TIAGo: torso lift and arm: base_footprint -> arm_tool_link of example-robot-data's")


# ---------------------------------------------------------------------- kinematics against Pinocchio


@pytest.mark.parametrize("name", NAMES)
def test_forward_kinematics_and_jacobian_match_pinocchio(name):
    robot = catalog.get(name)
    chain = _chain(name)
    assert (chain.name, chain.base, chain.tip, chain.dof, chain.dtype) == (name, robot.base, robot.tip, robot.dof, torch.float64)
    reference = SubChain(data.urdf_path(robot.urdf, robot=name), robot.base, robot.tip, chain.joint_names)
    q = _sample(chain, 300, seed=0)
    expected_pose, expected_jacobian = reference(q.numpy())
    for n in (100, 300):  # both of the chain's batch code paths (the second from 256 rows)
        pose, jacobian = (t.numpy() for t in chain.forward_kinematics_and_jacobian(q[:n]))
        position = np.linalg.norm(pose[:, :3, 3] - expected_pose[:n, :3, 3], axis=-1).max()
        rotation = rotation_angles(pose[:, :3, :3], expected_pose[:n, :3, :3]).max()
        entries = np.abs(jacobian - expected_jacobian[:n]).max()
        assert position <= POSITION_TOL, f"{name}, batch {n}: position differs by {position:.3g} m"
        assert rotation <= ROTATION_TOL, f"{name}, batch {n}: rotation differs by {rotation:.3g} rad"
        assert entries <= JACOBIAN_TOL, f"{name}, batch {n}: Jacobian differs by {entries:.3g}"


@pytest.mark.parametrize("name", NAMES)
def test_limits_are_the_urdf_s_as_pinocchio_reads_them(name):
    robot = catalog.get(name)
    chain = _chain(name)
    path = data.urdf_path(robot.urdf, robot=name)
    lower, upper, continuous = SubChain(path, robot.base, robot.tip, chain.joint_names).limits()
    assert np.array_equal(chain.lower.numpy(), lower) and np.array_equal(chain.upper.numpy(), upper)
    assert np.array_equal(chain.continuous.numpy(), continuous)
    joints = {j.get("name"): j for j in ET.parse(path).getroot().findall("joint")}
    for i, joint in enumerate(chain.joint_names):
        limit = joints[joint].find("limit")
        if not chain.continuous[i]:
            assert (chain.lower[i].item(), chain.upper[i].item()) == (float(limit.get("lower")), float(limit.get("upper")))
        assert 0 < chain.upper[i] - chain.lower[i] and (chain.continuous[i] or chain.upper[i] - chain.lower[i] <= MAX_REVOLUTE_RANGE)


# ---------------------------------------------------------------------- environments


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_the_environment_passes_torchrl_s_checks(name, dtype):
    env = ikrl.make_env(f"{name}+weighted_pose+sincos", batch_size=4, dtype=dtype, seed=0)
    check_env_specs(env, seed=0)
    rollout = env.rollout(3)
    assert rollout["next", "reward"].dtype == dtype and torch.isfinite(rollout["next", "observation"]).all()


def test_robots_declare_their_defaults_and_the_user_s_values_win():
    env = ikrl.make_env("ur10", batch_size=1)
    assert (env.position_tolerance, env.rotation_tolerance) == (0.005, math.radians(2.0))
    assert env.max_delta.tolist() == pytest.approx([0.1] * 6)
    env = ikrl.make_env("tiago_arm", batch_size=1)  # 1 cm steps along the torso lift, 0.1 rad elsewhere
    assert env.chain.joint_types[0] == "prismatic" and env.max_delta.tolist() == pytest.approx([0.01] + [0.1] * 7)
    env = ikrl.make_env("tiago_arm", batch_size=1, position_tolerance=0.001, max_delta=0.05)
    assert env.position_tolerance == 0.001 and env.max_delta.tolist() == pytest.approx([0.05] * 8)


# ---------------------------------------------------------------------- limits: soft, empty, too wide


@pytest.mark.parametrize("name", NAMES)
def test_soft_limits_are_offered_exactly_where_the_urdf_has_them(name):
    robot = catalog.get(name)
    chain = _chain(name)
    soft = soft_limits_of(data.urdf_path(robot.urdf, robot=name))
    narrower = {
        joint: soft[joint] for i, joint in enumerate(chain.joint_names)
        if joint in soft and (soft[joint][0] > chain.lower[i] or soft[joint][1] < chain.upper[i])
    }  # fmt: skip
    assert robot.soft_limits == bool(narrower), f"{name}: zoo.toml says soft_limits = {robot.soft_limits}; the URDF narrows {narrower}"
    if not robot.soft_limits:
        return
    careful = _chain(name, soft_limits=True)
    for i, joint in enumerate(chain.joint_names):
        lo, hi = narrower.get(joint, (chain.lower[i].item(), chain.upper[i].item()))
        assert (careful.lower[i].item(), careful.upper[i].item()) == (lo, hi), joint
    q = _sample(careful, 16, seed=1)  # the same kinematics, other limits (so another fingerprint)
    torch.testing.assert_close(careful.forward_kinematics(q), chain.forward_kinematics(q), rtol=0, atol=0)
    assert careful.fingerprint() != chain.fingerprint()


def test_soft_limits_is_a_parameter_of_the_robots_that_have_them_only():
    env = ikrl.make_env("pr2_left_arm(soft_limits=true)", batch_size=64, seed=0)
    wrist = env.chain.joint_names.index("l_wrist_flex_joint")
    assert (env.chain.lower[wrist].item(), env.chain.upper[wrist].item()) == pytest.approx((-1.994, -0.1))
    assert (env.reset()["q"][:, wrist] <= -0.1 + 1e-6).all()
    with pytest.raises(BadParameterError, match=r"^robot 'ur10' has no parameter 'soft_limits'; it accepts: none$"):
        ikrl.make_env("ur10(soft_limits=true)")
    with pytest.raises(BadParameterError, match=r"^pr2_left_arm: soft_limits must be true or false; got 1$"):
        ikrl.make_env("pr2_left_arm(soft_limits=1)")
    with pytest.raises(BadParameterError, match=r"ur10: soft_limits=true, but its URDF \(ur_description/urdf/ur10_robot.urdf\) declares no soft limits"):
        build_chain(catalog.get("ur10"), soft_limits=True)


_PENDULUM = ZooRobot(
    name="double_pendulum", title="double pendulum", urdf="double_pendulum_description/urdf/double_pendulum.urdf",
    base="base_link", tip="link2", dof=2, notes="", soft_limits=False,
)  # fmt: skip


def test_a_joint_that_cannot_move_is_refused_and_the_catalogue_can_fix_it():
    # example-robot-data's double pendulum writes <limit lower="0" upper="0"> on both joints.
    with pytest.raises(
        ChainError,
        match=r"double_pendulum\.urdf: robot 'double_pendulum': revolute joint 'joint1' has limits \[0, 0\], so it cannot "
        r"move \(URDFs write this when the limits were left unset\); give its real range in zoo\.toml "
        r"\(limits = \{ joint1 = \[lower, upper\] \} in the entry of robot 'double_pendulum'\), or end the chain before it$",
    ):
        build_chain(_PENDULUM)
    fixed = build_chain(ZooRobot(**{**_PENDULUM.__dict__, "limits": {"joint1": (-math.pi, math.pi), "joint2": (-math.pi, math.pi)}}))
    assert fixed.lower.tolist() == [-math.pi] * 2
    # The same kinematics as the wheel's continuous variant of the file.
    continuous = ikrl.load_chain(data.urdf_path("double_pendulum_description/urdf/double_pendulum_continuous.urdf", robot="t"),
                                 base="base_link", tip="link2", dtype=torch.float64)  # fmt: skip
    q = _sample(fixed, 32, seed=2)
    torch.testing.assert_close(fixed.forward_kinematics(q), continuous.forward_kinematics(q), rtol=0, atol=1e-15)
    with pytest.raises(ChainError, match=r"zoo.toml gives limits for elbow, which is not on the chain base_link -> link2 \(its joints: joint1, joint2\)"):
        build_chain(ZooRobot(**{**_PENDULUM.__dict__, "limits": {"joint1": (-1, 1), "joint2": (-1, 1), "elbow": (-1, 1)}}))


def test_a_revolute_joint_with_more_than_two_turns_is_refused():
    xml = """<robot name="r"><link name="a"/><link name="b"/><joint name="spin" type="revolute"><parent link="a"/>
    <child link="b"/><axis xyz="0 0 1"/><limit lower="-7" upper="7" effort="1" velocity="1"/></joint></robot>"""
    chain = ikrl.load_chain(xml, dtype=torch.float64)
    with pytest.raises(ChainError, match=r"^here: robot 'spinner': revolute joint 'spin' has limits \[-7, 7\], more than two turns \(14.000 rad > 4 pi\)"):
        check_ranges(chain, "spinner", "here")


def test_a_urdf_that_changed_is_refused():
    with pytest.raises(ChainError, match=r"robot 'ur10': the chain base_link -> tool0 has 6 joints \(shoulder_pan_joint, .*\); ikrl-zoo expects 7"):
        build_chain(ZooRobot(**{**catalog.get("ur10").__dict__, "dof": 7}))


# ---------------------------------------------------------------------- without example-robot-data


@pytest.fixture
def no_example_robot_data(monkeypatch):
    """example-robot-data uninstalled, as importlib.metadata sees it."""
    real = importlib.metadata.distribution

    def distribution(name):
        if name == data.DISTRIBUTION:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def test_without_example_robot_data_the_robots_are_listed_and_building_one_is_a_named_error(no_example_robot_data):
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0 and "ur10" in result.output and "ikrl-zoo" in result.output
    message = (
        r"robot 'ur10' \(ikrl-zoo\) is built from the URDFs of example-robot-data, which is not installed; install it "
        r"with pip install example-robot-data \(pip install ikrl-zoo installs it as a dependency\)"
    )
    with pytest.raises(MissingDependencyError, match=f"^{message}$"):
        ikrl.make_env("ur10+weighted_pose+sincos")
    result = CliRunner().invoke(app, ["check", "ur10"])
    assert result.exit_code == 1 and re.fullmatch(f"error: {message}", result.output.strip()), result.output
    assert "ikrl" in default_registry().robot("panda").distribution  # everything else still works
    ikrl.make_env("panda", batch_size=1)


def test_a_version_without_the_file_is_a_named_error(monkeypatch):
    monkeypatch.setattr(data, "_files", lambda: {})
    version = importlib.metadata.version(data.DISTRIBUTION)
    with pytest.raises(
        MissingDependencyError,
        match=rf"^robot 'xarm7' \(ikrl-zoo\) needs xarm_description/urdf/xarm7.urdf from example-robot-data, which version "
        rf"{re.escape(version)} does not have .*; install a version that has it, e.g. pip install 'example-robot-data>=4.1'$",
    ):
        ikrl.make_env("xarm7")

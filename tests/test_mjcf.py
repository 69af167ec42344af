"""MJCF loading, checked against MuJoCo's own kinematics (``mj_kinematics``) and, for the
shipped arms, against their URDFs."""

from __future__ import annotations

import math
import random
import sys

import mujoco
import numpy as np
import pytest
import torch

import ikrl
from ikrl.errors import (
    ChainError,
    MissingDependencyError,
    MjcfError,
    UnknownLinkError,
    UnsupportedJointError,
    UrdfError,
)
from ikrl.kinematics.protocol import random_joints
from ikrl.kinematics.se3 import so3_log

from .conftest import CR5_URDF, PANDA_URDF

F64 = torch.float64
CR5_MJCF = CR5_URDF.with_name("dobot_cr5.xml")
PANDA_MJCF = PANDA_URDF.with_name("panda.xml")
KINEMATIC = '<compiler boundmass="1e-3" boundinertia="1e-9" {}/>'  # kinematics only: no inertials needed


def mujoco_poses(model, base: str, tip: str, joint_names, q: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """MuJoCo's pose of ``tip`` (a body or a site) in body ``base``'s frame, ``[B, 4, 4]``,
    from ``mj_kinematics`` with the chain's joints at ``q`` and every other joint random."""
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    addresses = [int(model.joint(name).qposadr[0]) for name in joint_names]
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, tip) if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, tip) < 0 else -1
    base_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, base)
    out = []
    for row in q.tolist():
        mujoco.mj_resetData(model, data)
        for j in range(model.njnt):  # joints off the chain move too: they must not matter
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                data.qpos[model.jnt_qposadr[j]] = rng.uniform(-1, 1)
        data.qpos[addresses] = row
        mujoco.mj_kinematics(model, data)

        def pose(position, matrix):
            t = torch.eye(4, dtype=F64)
            t[:3, :3] = torch.tensor(np.asarray(matrix).reshape(3, 3), dtype=F64)
            t[:3, 3] = torch.tensor(np.asarray(position), dtype=F64)
            return t

        if site >= 0:
            end = pose(data.site_xpos[site], data.site_xmat[site])
        else:
            tip_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, tip)
            end = pose(data.xpos[tip_id], data.xmat[tip_id])
        out.append(torch.linalg.inv(pose(data.xpos[base_id], data.xmat[base_id])) @ end)
    return torch.stack(out)


def differences(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Largest position (metres) and rotation (radians) difference between two pose batches."""
    position = (a[..., :3, 3] - b[..., :3, 3]).norm(dim=-1).max().item()
    rotation = so3_log(a[..., :3, :3].transpose(-1, -2) @ b[..., :3, :3]).norm(dim=-1).max().item()
    return position, rotation


def check_against_mujoco(xml: str, base: str | None, tip: str | None, n: int = 64, seed: int = 0) -> tuple[float, float]:
    chain = ikrl.load_chain(xml, base=base, tip=tip, dtype=F64)
    model = mujoco.MjModel.from_xml_string(xml)
    q = random_joints(chain, n, torch.Generator().manual_seed(seed))
    theirs = mujoco_poses(model, chain.base, chain.tip, chain.joint_names, q, seed)
    position, rotation = differences(chain.forward_kinematics(q), theirs)
    assert position < 1e-9 and rotation < 1e-9, (position, rotation)
    return position, rotation


# A hand-written model in MJCF's own habits: degrees (the default), a non-default Euler
# sequence, default classes and childclass, every orientation attribute, a <frame>, a body
# with three joints off its origin (anchors), joint refs, an unlimited hinge and a slide.
HANDWRITTEN = f"""
<mujoco model="handwritten">
  {KINEMATIC.format('angle="degree" eulerseq="zyx"')}
  <default>
    <joint type="hinge" axis="0 0 1" range="-170 170"/>
    <default class="pitch">
      <joint axis="0 1 0" range="-90 120"/>
    </default>
    <default class="wrist">
      <joint axis="1 0 0" range="-45 45" pos="0 0 0.05"/>
      <site size="0.01"/>
    </default>
  </default>
  <worldbody>
    <body name="base" pos="0.1 -0.2 0.3" euler="30 -20 10">
      <body name="shoulder" pos="0 0 0.2" axisangle="1 1 0 35">
        <joint name="yaw" ref="15"/>
        <body name="upper" pos="0.05 0 0.1" xyaxes="0 1 0 -1 0 0.2">
          <joint name="pitch" class="pitch" pos="0 0.02 -0.03"/>
          <frame pos="0 0 0.3" euler="0 90 0">
            <body name="fore" zaxis="0.3 -0.2 1">
              <joint name="elbow" class="pitch" ref="-30"/>
              <joint name="elbow_roll" axis="1 0.5 0" range="-60 60" pos="0.01 0 0.02"/>
              <joint name="extend" type="slide" axis="0 0 1" range="-0.05 0.1" ref="0.02"/>
              <body name="hand" childclass="wrist" pos="0 0 0.25" quat="0.9 0.1 -0.3 0.2">
                <joint name="wrist_roll"/>
                <joint name="wrist_spin" axis="0 0 1" limited="false"/>
                <site name="tool" pos="0.02 0 0.08" euler="10 20 30"/>
                <site name="probe" pos="0 0.01 0.1" xyaxes="1 0 0 0 0 1"/>
              </body>
            </body>
          </frame>
          <body name="elbow_camera" pos="0 0.1 0">
            <joint name="camera_tilt" axis="0 1 0" range="-10 10"/>
          </body>
        </body>
      </body>
    </body>
    <body name="cup" pos="1 0 0">
      <freejoint name="cup_free"/>
      <geom type="sphere" size="0.03"/>
    </body>
  </worldbody>
</mujoco>
"""


def test_a_hand_written_model_matches_mujocos_kinematics():
    check_against_mujoco(HANDWRITTEN, base=None, tip="tool")
    check_against_mujoco(HANDWRITTEN, base="shoulder", tip="probe", seed=1)
    check_against_mujoco(HANDWRITTEN, base="upper", tip="hand", seed=2)
    chain = ikrl.load_chain(HANDWRITTEN, tip="tool", dtype=F64)
    assert chain.name == "handwritten" and chain.base == "world"
    assert chain.joint_names == ("yaw", "pitch", "elbow", "elbow_roll", "extend", "wrist_roll", "wrist_spin")
    assert chain.joint_types == ("revolute",) * 4 + ("prismatic", "revolute", "continuous")
    # Degrees read as radians, classes applied: MuJoCo's jnt_range, exactly.
    d = math.pi / 180
    expected_lower = [-170 * d, -90 * d, -90 * d, -60 * d, -0.05, -45 * d, -math.inf]
    expected_upper = [170 * d, 120 * d, 120 * d, 60 * d, 0.1, 45 * d, math.inf]
    torch.testing.assert_close(chain.lower, torch.tensor(expected_lower, dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(chain.upper, torch.tensor(expected_upper, dtype=F64), rtol=0, atol=1e-15)


def test_the_default_tip_is_the_one_jointed_end_and_ambiguity_is_named():
    arm = """<mujoco><compiler boundmass="1e-3" boundinertia="1e-9"/><worldbody>
      <body name="a"><joint name="j1" axis="0 0 1"/><body name="b" pos="0 0 1"><joint name="j2" axis="0 1 0"/>
      <body name="flange" pos="0 0 0.5"><site name="tool"/></body></body></body></worldbody></mujoco>"""
    chain = ikrl.load_chain(arm)
    assert (chain.base, chain.tip, chain.joint_names) == ("world", "b", ("j1", "j2"))
    # Hinges without a range turn freely.
    assert chain.joint_types == ("continuous", "continuous")
    with pytest.raises(ChainError, match=r"<string>: cannot choose a default tip: below base body 'world' the jointed bodies end in 3 bodies \(cup, elbow_camera, hand\)\. Pass tip= one of them \(or one of their sites\), or a body above them such as 'world'$"):
        ikrl.load_chain(HANDWRITTEN)
    with pytest.raises(ChainError, match=r"below base body 'shoulder' the jointed bodies end in 2 bodies \(elbow_camera, hand\)\. .* such as 'upper'$"):
        ikrl.load_chain(HANDWRITTEN, base="shoulder")
    assert ikrl.load_chain(HANDWRITTEN, base="fore").tip == "hand"


def _random_model(rng: random.Random) -> tuple[str, str, str]:
    """A random arm in random MJCF spellings: (xml, base, tip)."""
    degree = rng.random() < 0.5
    unit = 180 / math.pi if degree else 1.0
    sequence = rng.choice(["xyz", "zyx", "XYZ", "ZYX", "zxz", "XzX", "yXz"])

    def numbers(k, scale=1.0):
        return " ".join(f"{rng.uniform(-scale, scale):.6f}" for _ in range(k))

    def orientation():
        kind = rng.choice(["", "quat", "euler", "axisangle", "xyaxes", "zaxis"])
        if kind == "quat":
            return f' quat="{numbers(4)}"'
        if kind == "euler":
            return f' euler="{numbers(3, math.pi * unit)}"'
        if kind == "axisangle":
            return f' axisangle="{numbers(3)} {rng.uniform(-math.pi, math.pi) * unit:.6f}"'
        if kind == "xyaxes":
            return f' xyaxes="1 {numbers(2, 0.5)} {numbers(1)} 1 {numbers(1)}"'
        if kind == "zaxis":
            return f' zaxis="{numbers(2)} 1"'
        return ""

    bodies = []
    for i in range(rng.randint(2, 5)):
        joints = []
        for k in range(rng.choice([1, 1, 2, 3])):
            name = f"j{i}_{k}"
            kind = rng.choice(["hinge", "hinge", "hinge", "slide"])
            ref = rng.uniform(-1, 1) * (unit if kind == "hinge" else 0.1)
            limits = kind == "slide" or rng.random() < 0.7
            span = (math.pi * unit) if kind == "hinge" else 0.3
            range_ = f' range="{-rng.uniform(0.1, 1) * span:.6f} {rng.uniform(0.1, 1) * span:.6f}"' if limits else ""
            anchor = f' pos="{numbers(3, 0.1)}"' if rng.random() < 0.6 else ""
            joints.append(f'<joint name="{name}" type="{kind}" axis="{numbers(3)}" ref="{ref:.6f}"{anchor}{range_}/>')
        bodies.append((f"b{i}", f' pos="{numbers(3, 0.4)}"{orientation()}', "".join(joints)))
    xml = ""
    for name, placement, joints in reversed(bodies):
        inner = xml if xml else f'<site name="tool" pos="{numbers(3, 0.1)}"{orientation()}/>'
        side = f'<body name="{name}_side" pos="0.1 0 0"><joint name="{name}_side_joint" axis="0 0 1"/></body>'
        xml = f'<body name="{name}"{placement}>{joints}{side}{inner}</body>'
    angle = "degree" if degree else "radian"
    compiler = KINEMATIC.format(f'angle="{angle}" eulerseq="{sequence}"')
    xml = f"<mujoco>{compiler}<worldbody>{xml}</worldbody></mujoco>"
    base = rng.choice(["world", "b0"]) if len(bodies) > 2 else "world"
    return xml, base, rng.choice(["tool", bodies[-1][0]])


def test_random_mjcf_arms_match_mujocos_kinematics():
    rng = random.Random(20240515)
    worst = (0.0, 0.0)
    for case in range(30):
        xml, base, tip = _random_model(rng)
        result = check_against_mujoco(xml, base, tip, n=32, seed=case)
        worst = (max(worst[0], result[0]), max(worst[1], result[1]))
    assert worst[0] < 1e-9 and worst[1] < 1e-9


@pytest.mark.parametrize(
    ("mjcf", "urdf", "base", "tip"),
    [(CR5_MJCF, CR5_URDF, "base_link", "Link6"), (PANDA_MJCF, PANDA_URDF, "panda_link0", "panda_link8")],
)
def test_the_shipped_arms_in_mjcf_match_mujoco_and_their_urdfs(mjcf, urdf, base, tip):
    reference = ikrl.load_chain(urdf, base=base, tip=tip, dtype=F64)
    model = mujoco.MjModel.from_xml_path(str(mjcf))
    q = random_joints(reference, 200, torch.Generator().manual_seed(7))
    for mjcf_tip in (tip, "flange"):  # the body named like the URDF's tip link, and its site
        chain = ikrl.load_chain(mjcf, base=base, tip=mjcf_tip, dtype=F64)
        assert chain.joint_names == reference.joint_names
        assert chain.joint_types == reference.joint_types
        assert torch.equal(chain.lower, reference.lower) and torch.equal(chain.upper, reference.upper)
        ours = chain.forward_kinematics(q)
        position, rotation = differences(ours, mujoco_poses(model, base, mjcf_tip, chain.joint_names, q))
        assert position < 1e-9 and rotation < 1e-9, (position, rotation)
        position, rotation = differences(ours, reference.forward_kinematics(q))
        assert position < 1e-9 and rotation < 1e-9, (position, rotation)
    # The same kinematics, to the fingerprint's 1e-9.
    assert ikrl.load_chain(mjcf, base=base, tip=tip).fingerprint() == reference.fingerprint()


def test_path_text_and_bytes_give_the_same_chain(tmp_path):
    text = PANDA_MJCF.read_text()
    chains = [ikrl.load_chain(x, base="panda_link0", tip="flange") for x in (PANDA_MJCF, str(PANDA_MJCF), text, text.encode())]
    assert len({c.fingerprint() for c in chains}) == 1
    # From a path, MuJoCo finds included files beside it.
    (tmp_path / "arm.xml").write_text("<mujocoinclude>" + text.split("<worldbody>")[1].split("</worldbody>")[0] + "</mujocoinclude>")
    main = tmp_path / "main.xml"
    compiler = KINEMATIC.format('angle="radian"')
    main.write_text(f'<mujoco model="m">{compiler}<default><joint axis="0 0 1"/></default>'
                    '<worldbody><include file="arm.xml"/></worldbody></mujoco>')  # fmt: skip
    assert ikrl.load_chain(main, base="panda_link0", tip="flange").fingerprint() == chains[0].fingerprint()


def test_ball_and_free_joints_on_the_path_are_named():
    ball = HANDWRITTEN.replace('<joint name="pitch" class="pitch" pos="0 0.02 -0.03"/>', '<joint name="shoulder_ball" type="ball" range="0 90"/>')
    with pytest.raises(UnsupportedJointError, match=r"<string>: joint 'shoulder_ball' of body 'upper' is a MuJoCo ball joint; a chain moves only along hinge and slide joints \(choose a base and tip that avoid it\)"):
        ikrl.load_chain(ball, tip="tool")
    # Off the path it does not matter: from the body below it, the chain is fine.
    assert ikrl.load_chain(ball, base="upper", tip="tool").dof == 5
    with pytest.raises(UnsupportedJointError, match=r"joint 'cup_free' of body 'cup' is a MuJoCo free joint"):
        ikrl.load_chain(HANDWRITTEN.replace("</worldbody>", '<site name="s"/></worldbody>').replace('<geom type="sphere" size="0.03"/>', '<geom type="sphere" size="0.03"/><site name="on_cup"/>'), tip="on_cup")


def test_bad_base_tip_and_joints_say_what_would_be_right(tmp_path):
    with pytest.raises(UnknownLinkError, match=r"<string>: unknown tip link 'tol'\. Did you mean 'tool'\?"):
        ikrl.load_chain(HANDWRITTEN, tip="tol")
    with pytest.raises(UnknownLinkError, match=r"unknown base link 'tool'\..*Links: base, cup, elbow_camera, fore, hand, shoulder, upper, world$"):
        ikrl.load_chain(HANDWRITTEN, base="tool", tip="hand")  # a site is no base
    with pytest.raises(ChainError, match=r"tip 'elbow_camera' is not below base body 'fore' \(the bodies above it are upper, shoulder, base, world\); pass a base that holds the tip"):
        ikrl.load_chain(HANDWRITTEN, base="fore", tip="elbow_camera")
    free_slide = HANDWRITTEN.replace('range="-0.05 0.1"', 'limited="false"')
    with pytest.raises(ChainError, match=r"slide joint 'extend' of body 'fore' has no range; a chain needs its limits: give it range=\"LOWER UPPER\" \(metres\)"):
        ikrl.load_chain(free_slide, tip="tool")
    massless = HANDWRITTEN.replace(KINEMATIC.format('angle="degree" eulerseq="zyx"'), '<compiler eulerseq="zyx"/>')
    path = tmp_path / "massless.xml"
    path.write_text(massless)
    with pytest.raises(MjcfError, match=r"massless\.xml: MuJoCo cannot compile it: Error: mass and inertia of moving bodies must be larger than mjMINVAL.*kinematics-only file, <compiler boundmass=") as info:
        ikrl.load_chain(path, tip="tool")
    assert isinstance(info.value, UrdfError)  # one family for every unreadable robot description


def test_without_mujoco_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco now raises ImportError
    with pytest.raises(MissingDependencyError, match=r'panda\.xml: reading an MJCF file needs MuJoCo, which is not installed; install it with pip install "ikrl\[mjcf\]"'):
        ikrl.load_chain(PANDA_MJCF)
    assert ikrl.load_chain(PANDA_URDF).dof == 7  # URDFs need no MuJoCo

"""xacro files: expanded without ROS into the same chain as the URDF written out by hand."""

from __future__ import annotations

import math
import sys

import pytest
import torch

import ikrl
from ikrl.errors import (
    MissingDependencyError,
    UnresolvedPackageError,
    UrdfError,
    UrdfNotFoundError,
    XacroError,
)
from ikrl.kinematics.protocol import random_joints

F64 = torch.float64

# A macro file in a ROS package of its own (found through its package.xml).
MACROS = """<?xml version="1.0"?>
<robot xmlns:xacro="http://www.ros.org/wiki/xacro">
  <xacro:property name="limit" value="${radians(170)}"/>
  <xacro:macro name="revolute" params="name parent child xyz:='0 0 0' rpy:='0 0 0' axis:='0 0 1' lower:=${-limit} upper:=${limit}">
    <link name="${child}"/>
    <joint name="${name}" type="revolute">
      <origin xyz="${xyz}" rpy="${rpy}"/>
      <parent link="${parent}"/>
      <child link="${child}"/>
      <axis xyz="${axis}"/>
      <limit lower="${lower}" upper="${upper}" effort="10" velocity="1"/>
    </joint>
  </xacro:macro>
</robot>
"""

ARM_XACRO = """<?xml version="1.0"?>
<robot name="xarm3" xmlns:xacro="http://www.ros.org/wiki/xacro">
  <xacro:arg name="prefix" default=""/>
  <xacro:property name="p" value="$(arg prefix)"/>
  <xacro:property name="upper_arm" value="0.425"/>
  <xacro:property name="forearm" value="${upper_arm * 0.92}"/>
  <xacro:include filename="$(find my_arm_description)/urdf/macros.xacro"/>
  <link name="${p}base"/>
  <xacro:revolute name="${p}shoulder_pan" parent="${p}base" child="${p}shoulder" xyz="0 0 0.1625"/>
  <xacro:revolute name="${p}shoulder_lift" parent="${p}shoulder" child="${p}upper_arm"
                  rpy="${pi/2} 0 0" lower="${-pi}" upper="${pi/4}"/>
  <xacro:revolute name="${p}elbow" parent="${p}upper_arm" child="${p}forearm" xyz="${-upper_arm} 0 0"/>
  <xacro:revolute name="${p}wrist" parent="${p}forearm" child="${p}wrist_link"
                  xyz="${-forearm} 0 ${0.1333 - 0.0333}" rpy="0 ${-pi/2} ${atan2(1, 2)}" axis="0 1 0"/>
  <link name="${p}tool"/>
  <joint name="${p}tool_joint" type="fixed">
    <origin xyz="0 0 ${0.1 * 0.5}" rpy="0 0 0"/>
    <parent link="${p}wrist_link"/>
    <child link="${p}tool"/>
  </joint>
</robot>
"""

# The same arm with prefix:=left_, every expression worked out by hand.
HALF_PI = repr(math.pi / 2)
LIMIT = repr(math.radians(170))
ARM_URDF = f"""<?xml version="1.0"?>
<robot name="xarm3">
  <link name="left_base"/><link name="left_shoulder"/><link name="left_upper_arm"/>
  <link name="left_forearm"/><link name="left_wrist_link"/><link name="left_tool"/>
  <joint name="left_shoulder_pan" type="revolute">
    <origin xyz="0 0 0.1625" rpy="0 0 0"/><parent link="left_base"/><child link="left_shoulder"/>
    <axis xyz="0 0 1"/><limit lower="-{LIMIT}" upper="{LIMIT}" effort="10" velocity="1"/>
  </joint>
  <joint name="left_shoulder_lift" type="revolute">
    <origin xyz="0 0 0" rpy="{HALF_PI} 0 0"/><parent link="left_shoulder"/><child link="left_upper_arm"/>
    <axis xyz="0 0 1"/><limit lower="{-math.pi!r}" upper="{math.pi / 4!r}" effort="10" velocity="1"/>
  </joint>
  <joint name="left_elbow" type="revolute">
    <origin xyz="-0.425 0 0" rpy="0 0 0"/><parent link="left_upper_arm"/><child link="left_forearm"/>
    <axis xyz="0 0 1"/><limit lower="-{LIMIT}" upper="{LIMIT}" effort="10" velocity="1"/>
  </joint>
  <joint name="left_wrist" type="revolute">
    <origin xyz="{-0.425 * 0.92!r} 0 {0.1333 - 0.0333!r}" rpy="0 -{HALF_PI} {math.atan2(1, 2)!r}"/>
    <parent link="left_forearm"/><child link="left_wrist_link"/>
    <axis xyz="0 1 0"/><limit lower="-{LIMIT}" upper="{LIMIT}" effort="10" velocity="1"/>
  </joint>
  <joint name="left_tool_joint" type="fixed">
    <origin xyz="0 0 0.05" rpy="0 0 0"/><parent link="left_wrist_link"/><child link="left_tool"/>
  </joint>
</robot>
"""


@pytest.fixture
def no_ros(monkeypatch):
    """No ROS paths: packages are found beside the file or not at all."""
    monkeypatch.delenv("ROS_PACKAGE_PATH", raising=False)
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)


def package(root, name: str, files: dict[str, str]):
    """A ROS package folder: a package.xml naming it, and ``files``."""
    folder = root / name
    (folder / "urdf").mkdir(parents=True)
    (folder / "package.xml").write_text(f'<?xml version="1.0"?><package format="3"><name>{name}</name></package>')
    for relative, text in files.items():
        (folder / relative).write_text(text)
    return folder


def test_a_xacro_arm_loads_to_the_same_chain_as_its_urdf_written_by_hand(tmp_path, no_ros):
    folder = package(tmp_path, "my_arm_description", {"urdf/macros.xacro": MACROS, "urdf/arm.urdf.xacro": ARM_XACRO})
    (tmp_path / "arm.urdf").write_text(ARM_URDF)
    ours = ikrl.load_chain(folder / "urdf" / "arm.urdf.xacro", tip="left_tool", dtype=F64, xacro_args={"prefix": "left_"})
    by_hand = ikrl.load_chain(tmp_path / "arm.urdf", tip="left_tool", dtype=F64)
    assert ours.joint_names == ("left_shoulder_pan", "left_shoulder_lift", "left_elbow", "left_wrist")
    assert ours.fingerprint() == by_hand.fingerprint()
    assert torch.equal(ours.lower, by_hand.lower) and torch.equal(ours.upper, by_hand.upper)
    q = random_joints(by_hand, 256, torch.Generator().manual_seed(0))
    assert (ours.forward_kinematics(q) - by_hand.forward_kinematics(q)).abs().max().item() <= 1e-12
    # The argument's default applies without xacro_args; a str path works too.
    plain = ikrl.load_chain(str(folder / "urdf" / "arm.urdf.xacro"))
    assert plain.joint_names[0] == "shoulder_pan" and plain.tip == "wrist_link"


def test_packages_are_found_on_ros_package_path(tmp_path, no_ros, monkeypatch):
    package(tmp_path / "workspace" / "src", "my_arm_description", {"urdf/macros.xacro": MACROS})
    arm = tmp_path / "elsewhere" / "arm.urdf.xacro"
    arm.parent.mkdir()
    arm.write_text(ARM_XACRO)
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path / "workspace" / "src"))
    assert ikrl.load_chain(arm).dof == 4


def test_an_unresolvable_package_is_named(tmp_path, no_ros):
    arm = tmp_path / "arm.urdf.xacro"
    arm.write_text(ARM_XACRO.replace("$(find my_arm_description)", "$(find nothing_here)"))
    with pytest.raises(UnresolvedPackageError) as info:
        ikrl.load_chain(arm)
    assert str(info.value) == (
        f"{arm}: $(find nothing_here) names ROS package 'nothing_here', which cannot be found: no package.xml "
        "naming it in the folders above the file or beside them, nor on the ROS paths (ROS_PACKAGE_PATH is not "
        "set; AMENT_PREFIX_PATH is not set). Put the folder holding 'nothing_here' on ROS_PACKAGE_PATH, or "
        "expand the file with ROS's xacro and load the URDF"
    )
    assert info.value.package == "nothing_here" and isinstance(info.value, UrdfError)
    # package:// includes, which xacro itself cannot follow, are resolved (or named) the same way.
    arm.write_text(ARM_XACRO.replace("$(find my_arm_description)", "package://nothing_here"))
    with pytest.raises(UnresolvedPackageError, match=r"arm\.urdf\.xacro: package://nothing_here/urdf/macros\.xacro names ROS package 'nothing_here', which cannot be found"):
        ikrl.load_chain(arm)
    package(tmp_path, "my_arm_description", {"urdf/macros.xacro": MACROS})
    arm.write_text(ARM_XACRO.replace("$(find my_arm_description)", "package://my_arm_description"))
    assert ikrl.load_chain(arm).dof == 4


def test_xacro_mistakes_say_what_would_be_right(tmp_path, no_ros):
    folder = package(tmp_path, "my_arm_description", {"urdf/macros.xacro": MACROS, "urdf/arm.urdf.xacro": ARM_XACRO})
    arm = folder / "urdf" / "arm.urdf.xacro"
    with pytest.raises(XacroError, match=r"arm\.urdf\.xacro: xacro_args 'prefx' \(did you mean 'prefix'\?\): the file declares no such argument; its arguments: prefix$"):
        ikrl.load_chain(arm, xacro_args={"prefx": "left_"})
    broken = folder / "urdf" / "broken.urdf.xacro"
    broken.write_text(ARM_XACRO.replace("${-upper_arm}", "${-upper_arm_length}"))
    with pytest.raises(XacroError, match=r"broken\.urdf\.xacro: xacro cannot expand it: .*upper_arm_length"):
        ikrl.load_chain(broken)
    urdf = tmp_path / "arm.urdf"
    urdf.write_text(ARM_URDF)
    with pytest.raises(XacroError, match=r"arm\.urdf: xacro_args were given, but this is not a xacro file \(a path whose name ends in \.xacro\)"):
        ikrl.load_chain(urdf, xacro_args={"prefix": "left_"})
    with pytest.raises(UrdfNotFoundError, match=r"nope\.urdf\.xacro: no such file"):
        ikrl.load_chain(tmp_path / "nope.urdf.xacro")
    with pytest.raises(TypeError, match=r"xacro_args must map names \(str\) to strings or numbers; got 'prefix': \['left_'\]"):
        ikrl.load_chain(arm, xacro_args={"prefix": ["left_"]})


def test_without_xacro_the_error_names_the_extra(tmp_path, monkeypatch):
    arm = tmp_path / "arm.urdf.xacro"
    arm.write_text(ARM_XACRO)
    monkeypatch.setitem(sys.modules, "xacro", None)  # import xacro now raises ImportError
    with pytest.raises(MissingDependencyError, match=r'arm\.urdf\.xacro: expanding a xacro file needs the xacro package, which is not installed; install it with pip install "ikrl\[xacro\]"'):
        ikrl.load_chain(arm)

"""Shared fixtures: the robots that ship with ikrl, and where example-robot-data keeps its URDFs."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import ikrl_robots
import pytest
import torch

import ikrl

CR5_URDF = ikrl_robots.info("dobot_cr5").urdf
PANDA_URDF = ikrl_robots.info("panda").urdf
UR5E_URDF = ikrl_robots.info("ur5e").urdf


def example_robot_data_dir() -> Path:
    """The robots/ folder of the example-robot-data distribution (a test dependency)."""
    dist = importlib.metadata.distribution("example-robot-data")
    return Path(str(dist.locate_file("cmeel.prefix/share/example-robot-data/robots")))


@pytest.fixture
def cr5() -> ikrl.Chain:
    return ikrl.load_chain(CR5_URDF, dtype=torch.float32)


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test starts and ends with no cached registry: plugins never leak between tests."""
    from ikrl.extend.registry import reset_default_registry

    reset_default_registry()
    yield
    reset_default_registry()


TOY_ARM_URDF = """<?xml version="1.0"?>
<robot name="toy"><link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/>
<joint name="yaw" type="continuous"><origin xyz="0 0 0.1"/><parent link="base"/><child link="l1"/><axis xyz="0 0 1"/></joint>
<joint name="a" type="revolute"><parent link="l1"/><child link="l2"/><axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
<joint name="b" type="revolute"><origin xyz="0 0 0.3"/><parent link="l2"/><child link="l3"/><axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
<joint name="c" type="prismatic"><origin xyz="0 0 0.3"/><parent link="l3"/><child link="l4"/><axis xyz="0 0 1"/><limit lower="0" upper="0.2" effort="1" velocity="1"/></joint>
</robot>"""


@pytest.fixture
def toy_arm_env():
    """An environment on a chain with a continuous and a prismatic joint, built directly."""
    from ikrl.env.ikenv import IKEnv
    from ikrl.extend.registry import assemble

    parts = assemble("dobot_cr5+geodesic+uniform+sincos")
    chain = ikrl.load_chain(TOY_ARM_URDF)
    return IKEnv(chain, parts.reward, parts.sampler, parts.transforms, batch_size=2, seed=0)

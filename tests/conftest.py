"""Shared fixtures: the robots that ship with ikrl, and where example-robot-data keeps its URDFs."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch

import ikrl
import ikrl_robots

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

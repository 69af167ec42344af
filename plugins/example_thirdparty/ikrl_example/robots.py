"""Two robots: the toy arm from its URDF, and the same arm built in Python."""

from __future__ import annotations

import math
from pathlib import Path

import ikrl
from ikrl import Chain, Joint
from ikrl.errors import BadParameterError

URDF = Path(__file__).with_name("toy_arm.urdf")
#: What environments on the toy arm use unless the user says otherwise (make_env's
#: position_tolerance, rotation_tolerance and max_delta): a toy needs no millimetres.
DEFAULTS = {"position_tolerance": 0.01, "rotation_tolerance": math.radians(5), "max_delta": 0.2}


def toy_arm() -> Chain:
    """The toy arm of toy_arm.urdf: a base yaw and three pitch joints."""
    # A URDF robot is one line around ikrl.load_chain; with_env_defaults declares its defaults.
    return ikrl.load_chain(URDF, base="base", tip="tool").with_env_defaults(**DEFAULTS)


def toy_arm_py(*, link: float = 0.3) -> Chain:
    """The toy arm built in Python, with both middle links ``link`` metres long (0.3 m is
    the URDF's arm): the same joints, origins, axes and limits, no file."""
    if not (isinstance(link, int | float) and math.isfinite(link) and link > 0):
        raise BadParameterError(f"toy_arm_py: link must be a positive length in metres; got {link!r}")
    y = (0.0, 1.0, 0.0)
    joints = [
        Joint.from_xyz_rpy("yaw", "continuous", "base", "l1", xyz=(0, 0, 0.1), axis=(0, 0, 1)),
        Joint.from_xyz_rpy("shoulder", "revolute", "l1", "l2", axis=y, lower=-2, upper=2),
        Joint.from_xyz_rpy("elbow", "revolute", "l2", "l3", xyz=(0, 0, link), axis=y, lower=-2.5, upper=2.5),
        Joint.from_xyz_rpy("wrist", "revolute", "l3", "l4", xyz=(0, 0, link), axis=y, lower=-2, upper=2),
        Joint.from_xyz_rpy("tool_joint", "fixed", "l4", "tool", xyz=(0, 0, 0.1)),
    ]
    chain = Chain.from_joints(joints, base="base", tip="tool", name="toy_arm_py", source="toy_arm_py")
    return chain.with_env_defaults(**DEFAULTS)

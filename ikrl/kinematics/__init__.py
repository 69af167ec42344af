"""Kinematics: SE(3) math, the kinematic-chain protocol, ikrl's own chain and the adapters
that read robot descriptions into it (URDF, xacro, MJCF; :func:`load_chain` takes any).

Nothing here knows about reinforcement learning; everything is pure torch.
"""

from __future__ import annotations

from ikrl.kinematics import se3
from ikrl.kinematics.chain import Chain, Joint, Mimic
from ikrl.kinematics.mjcf import load_mjcf_chain
from ikrl.kinematics.urdf import load_chain
from ikrl.kinematics.xacro import expand_xacro

__all__ = ["Chain", "Joint", "Mimic", "expand_xacro", "load_chain", "load_mjcf_chain", "se3"]

"""Kinematics: SE(3) math, the kinematic-chain protocol, ikrl's own chain and the URDF adapter.

Nothing here knows about reinforcement learning; everything is pure torch.
"""

from __future__ import annotations

from ikrl.kinematics import se3
from ikrl.kinematics.chain import Chain, Joint, Mimic
from ikrl.kinematics.urdf import load_chain

__all__ = ["Chain", "Joint", "Mimic", "load_chain", "se3"]

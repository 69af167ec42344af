"""ikrl: inverse kinematics as reinforcement learning, for any robot arm.

The kinematics core: :func:`load_chain` reads a URDF into a batched, differentiable
:class:`Chain`; :mod:`ikrl.se3` holds the SE(3) math and its conventions.
"""

from __future__ import annotations

from ikrl.chain import Chain, Joint, Mimic
from ikrl.urdf import load_chain

__all__ = ["Chain", "Joint", "Mimic", "load_chain"]
__version__ = "0.1.0"

"""Batched IK solving (damped least squares over a pool of starts) and the files it reads and writes.

This layer needs only the kinematics: no environment, no reinforcement learning.
"""

from __future__ import annotations

from ikrl.solver.pool import SolveResult, solve

__all__ = ["SolveResult", "solve"]

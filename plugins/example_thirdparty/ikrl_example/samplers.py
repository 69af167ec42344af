"""A sampler: every arm starts at the home pose; targets lie in a box of joint values around it."""

from __future__ import annotations

import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.kinematics.protocol import KinematicChain, bounds, into_limits


class NearHome:
    """Start at home (the middle of each joint's range, 0 for continuous joints); target
    ``home + spread * u`` with ``u`` uniform in [-1, 1] per joint, moved into the limits."""

    def __init__(self, *, spread: float = 0.5) -> None:
        if not (isinstance(spread, int | float) and 0 <= spread < float("inf")):
            raise BadParameterError(f"near_home: spread must be a finite number >= 0 (radians or metres); got {spread!r}")
        self.spread = float(spread)

    def __call__(self, chain: KinematicChain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        low, high = bounds(chain)  # [-pi, pi] for continuous joints
        home = ((low + high) / 2).repeat(n, 1)  # [n, dof]
        # Every random number from the generator, in float64 on its device: a seed repeats on
        # any dtype and device of the chain.
        u = torch.rand(n, chain.dof, generator=generator, device=generator.device, dtype=torch.float64)
        offset = (self.spread * (2 * u - 1)).to(device=chain.device, dtype=chain.dtype)
        return home, into_limits(chain, home + offset)

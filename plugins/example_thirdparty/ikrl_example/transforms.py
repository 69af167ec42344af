"""An observation transform: where the target is from the tip, and how far it is turned."""

from __future__ import annotations

from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.extend.components import State
from ikrl.kinematics.protocol import KinematicChain


class TipOffset:
    """4 features: the target's origin minus the tip's, in the base frame, in units of
    ``scale`` metres; and the rotation error, radians."""

    # Neither the joint values nor the whole target pose can be read from these features,
    # so ikrl still adds its raw joints and target blocks to the observation.
    shows = frozenset()

    def __init__(self, *, scale: float = 0.1) -> None:
        if not (isinstance(scale, int | float) and 0 < scale < float("inf")):
            raise BadParameterError(f"tip_offset: scale must be a positive distance in metres; got {scale!r}")
        self.scale = float(scale)

    def size(self, chain: KinematicChain) -> int:
        return 4

    def __call__(self, state: State) -> tuple[Tensor, Tensor]:
        offset = (state.target[:, :3, 3] - state.tip[:, :3, 3]) / self.scale
        # Two blocks, [N, 3] and [N, 1]: the environment concatenates them with the others.
        return offset, state.error.rotation.unsqueeze(-1)

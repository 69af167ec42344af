"""The local corrector: a joint step linear in the pose error, ``dq = A e``.

``e`` is the environment's ``error``, the twist ``log(tip^-1 target)`` in the tip frame,
``(v, w)``. The gain ``A`` (``dof x 6``) is damped least squares on the tip-frame Jacobian
plus a residual that an MLP of the observation's other features learns:

    A = J_tip^T (J_tip J_tip^T + d^2 I)^-1 + MLP(features)

Linear in ``e``: an arm on its target gets exactly zero motion whatever the weights, and small
errors are corrected as precisely as large ones. The damped least squares part carries no
gradient; the MLP learns what it gets wrong (near singularities, at the limits, where a
step of at most ``max_delta`` overshoots). The step is then scaled down as a whole until its
largest joint change is within ``max_delta``, which keeps its direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ikrl.errors import BadParameterError
from ikrl.rl.policy import mlp_parameters
from ikrl.util.checks import check_int

__all__ = ["Corrector", "damped_least_squares"]


def damped_least_squares(chain, q: Tensor, damping: float) -> Tensor:
    """``[N, dof, 6]``: ``J^T (J J^T + damping^2 I)^-1`` for error twists in the tip frame.

    ``chain.jacobian`` gives the tip origin's linear and angular velocity in the base frame;
    rotating both by ``R_tip^T`` gives them in the tip frame, where the error twist lives.
    No gradient flows through it.
    """
    with torch.no_grad():
        tip, jacobian = chain.forward_kinematics_and_jacobian(q.to(chain.dtype))
        r_t = tip[..., :3, :3].transpose(-1, -2)
        j_tip = torch.cat([r_t @ jacobian[..., :3, :], r_t @ jacobian[..., 3:, :]], -2)
        eye = torch.eye(6, dtype=j_tip.dtype, device=j_tip.device)
        return j_tip.transpose(-1, -2) @ torch.linalg.inv(j_tip @ j_tip.transpose(-1, -2) + damping**2 * eye)


class Corrector(nn.Module):
    """``forward(q [N, dof], features [N, F], error [N, 6], chain) -> dq [N, dof]``.

    Args:
        feature_size: ``F``, width of the features the residual gain sees (the spec's
            observation without the columns that vanish on target, see
            :func:`ikrl.extend.components.zero_on_target`).
        max_delta: ``[dof]`` the largest joint change per step.
        hidden: widths of the residual MLP's hidden layers (SiLU).
        damping: of the damped least squares part; ``0`` turns that part off (no ``base``).
    """

    max_delta: Tensor

    def __init__(
        self, feature_size: int, max_delta: Tensor | Sequence[float], *, hidden: Sequence[int] = (256, 256, 256), damping: float = 0.05
    ) -> None:
        super().__init__()
        max_delta = torch.as_tensor(max_delta, dtype=torch.float32).flatten().clone()
        hidden = tuple(hidden)
        check_int("corrector", "feature_size", feature_size, low=1)
        if max_delta.numel() < 1 or not bool((max_delta > 0).all() & torch.isfinite(max_delta).all()):
            raise BadParameterError(f"corrector: max_delta must hold one positive finite number per joint; got {max_delta.tolist()}")
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise BadParameterError(f"corrector: hidden must be one or more positive layer widths; got {hidden!r}")
        if not (isinstance(damping, (int, float)) and 0 <= damping < float("inf")):
            raise BadParameterError(f"corrector: damping must be a number >= 0; got {damping!r}")
        self.feature_size, self.dof, self.hidden, self.damping = feature_size, max_delta.numel(), hidden, float(damping)
        layers: list[nn.Module] = []
        size = feature_size
        for width in hidden:
            layers += [nn.Linear(size, width), nn.SiLU()]
            size = width
        last = nn.Linear(size, 6 * self.dof)
        with torch.no_grad():  # a small residual at first: the untrained gain is almost the base
            last.weight.mul_(0.1)
            last.bias.zero_()
        self.net = nn.Sequential(*layers, last)
        self.register_buffer("max_delta", max_delta)

    def gain(self, q: Tensor, features: Tensor, chain) -> Tensor:
        """``A [N, dof, 6]``."""
        dtype = self.max_delta.dtype
        residual = self.net(features.to(dtype)).unflatten(-1, (self.dof, 6))
        if self.damping == 0:
            return residual
        return residual + damped_least_squares(chain, q, self.damping).to(dtype)

    def forward(self, q: Tensor, features: Tensor, error: Tensor, chain) -> Tensor:
        max_delta = self.max_delta
        dq = (self.gain(q, features, chain) @ error.to(max_delta.dtype).unsqueeze(-1)).squeeze(-1)
        over = (dq.abs() / max_delta).amax(-1, keepdim=True).clamp(min=1.0)
        return (dq / over).to(q.dtype)

    @staticmethod
    def parameter_count(config: dict, dof: int) -> int:
        """The parameters a corrector of ``config`` for ``dof`` joints has, counted without building it."""
        return mlp_parameters([config["feature_size"], *config.get("hidden", (256, 256, 256)), 6 * dof])

    def config(self) -> dict:
        """What rebuilds this corrector's structure (with ``max_delta`` from the policy)."""
        return {"feature_size": self.feature_size, "hidden": list(self.hidden), "damping": self.damping}

    def extra_repr(self) -> str:
        return f"features={self.feature_size}, dof={self.dof}, hidden={self.hidden}, damping={self.damping}"

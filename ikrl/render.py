"""Pictures of an arm: stick figures from :meth:`Chain.skeleton`, drawn with matplotlib.

Uses matplotlib's object API (no pyplot), so it needs no display and no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ikrl.chain import Chain

__all__ = ["draw_arm"]


def draw_arm(
    chain: Chain,
    q: torch.Tensor,
    path: str | Path,
    *,
    targets: torch.Tensor | None = None,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    size: tuple[int, int] = (800, 800),
    dpi: int = 100,
) -> Path:
    """Draw the arm at each row of ``q[k, dof]`` (and target poses ``[k, 4, 4]``) to a PNG.

    Each configuration is a polyline through the base, the joint origins and the tip, with
    the tip frame's axes in red, green and blue. Returns the path written.
    """
    q = q.reshape(-1, chain.dof).to(dtype=chain.dtype, device=chain.device)
    with torch.no_grad():
        points = chain.skeleton(q).cpu().double()
        tips = chain.forward_kinematics(q).cpu().double()
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    reach = float(points.norm(dim=-1).max()) or 1.0
    axis_length = 0.12 * reach
    colors = [f"C{i % 10}" for i in range(len(q))]
    for i, (pts, tip) in enumerate(zip(points, tips, strict=True)):
        label = labels[i] if labels is not None else None
        ax.plot(*pts.T.numpy(), "-o", color=colors[i], markersize=3, linewidth=2, label=label)
        for k, c in enumerate("rgb"):
            end = tip[:3, 3] + axis_length * tip[:3, k]
            ax.plot(*torch.stack([tip[:3, 3], end]).T.numpy(), color=c, linewidth=1)
    if targets is not None:
        marks = targets.reshape(-1, 4, 4)[:, :3, 3].detach().cpu().double()
        ax.scatter(*marks.T.numpy(), marker="x", s=60, color="k", label="target")
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_zlim(-0.2 * reach, reach)
    ax.set_box_aspect((1, 1, 0.6))
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.set_title(title or f"{chain.name}: {chain.base} to {chain.tip}")
    if labels is not None or targets is not None:
        ax.legend(loc="upper left", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path

"""Pictures of an arm: stick figures from :meth:`Chain.skeleton`, drawn with matplotlib.

Uses matplotlib's object API (no pyplot), so it needs no display and no global state.

* :func:`draw_arm` writes one PNG of several configurations.
* :func:`render_frame` returns an RGB array (what ``IKEnv.render`` and TorchRL's
  ``PixelRenderTransform`` want); its axis limits depend only on the chain, so the frames
  of a rollout line up.
* :func:`render_rollout` writes a rollout ``[T, k, dof]`` as an animated GIF (Pillow).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ikrl.errors import BadParameterError, IkrlError, ShapeError
from ikrl.kinematics.protocol import KinematicChain, random_joints

__all__ = ["axis_limits", "draw_arm", "render_frame", "render_rollout"]

#: Most frames :func:`render_rollout` puts in a GIF; longer rollouts are subsampled.
MAX_GIF_FRAMES = 60
_DPI = 100
_REACH_SAMPLES = 256
# Per chain (weakly held, so chains are still freed): the limits cost a few hundred
# forward passes, and an environment asks for them on every render.
_LIMITS: weakref.WeakKeyDictionary[KinematicChain, tuple[tuple[float, float], ...]] = weakref.WeakKeyDictionary()


def draw_arm(
    chain: KinematicChain,
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
        points = skeleton(chain, q).cpu().double()
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
    ax.set_title(title or f"{chain.name}: {getattr(chain, 'base', 'base')} to {getattr(chain, 'tip', 'tip')}")
    if labels is not None or targets is not None:
        ax.legend(loc="upper left", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def skeleton(chain: KinematicChain, q: torch.Tensor) -> torch.Tensor:
    """``chain.skeleton(q)`` (points to draw, ``[..., points, 3]``), or an error saying that this
    chain cannot be drawn: ``skeleton`` is the one optional member of a kinematic chain."""
    draw = getattr(chain, "skeleton", None)
    if not callable(draw):
        raise IkrlError(
            f"chain {chain.name!r} ({type(chain).__name__}) has no skeleton(q), so it cannot be drawn; "
            "give it a skeleton(q) returning [..., points, 3] positions in the base frame"
        )
    points = draw(q)
    if not isinstance(points, torch.Tensor):
        raise IkrlError(f"chain {chain.name!r}: skeleton(q) must return a tensor of points [..., points, 3]; got {type(points).__name__}")
    return points


def axis_limits(chain: KinematicChain) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """``((x0, x1), (y0, y1), (z0, z1))`` in metres: a box around everything the arm can reach.

    Estimated once per chain from the skeletons of the zero configuration and
    ``_REACH_SAMPLES`` random ones (a fixed seed, so the same chain always gets the same
    box), with a 10 % margin. Fixed limits are what keep the frames of a rollout from
    jumping as the arm moves. x and y are centred on the base; z spans from the lowest
    point (at least a little below the base) to the reach, so the scale is the same on
    all three axes.
    """
    cached = _LIMITS.get(chain)
    if cached is not None:
        return cached  # type: ignore[return-value]
    q = random_joints(chain, _REACH_SAMPLES, torch.Generator().manual_seed(0))
    q = torch.cat([torch.zeros_like(q[:1]), q])
    with torch.no_grad():
        points = skeleton(chain, q).detach().cpu().double()
    reach = 1.1 * float(points.norm(dim=-1).max())
    if not (reach > 0 and np.isfinite(reach)):
        reach = 1.0  # a degenerate chain (every joint at the base): any box will do
    low_z = min(-0.1 * reach, 1.1 * float(points[..., 2].min()))
    limits = ((-reach, reach), (-reach, reach), (low_z, reach))
    _LIMITS[chain] = limits
    return limits


def render_frame(
    chain: KinematicChain,
    q: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    size: tuple[int, int] = (480, 480),
    title: str | None = None,
    trail: torch.Tensor | None = None,
) -> np.ndarray:
    """One picture of the arm(s) at ``q`` (``[k, dof]`` or ``[dof]``) as an RGB array.

    Each arm is a stick figure in its own colour with the tip frame's axes (red, green,
    blue for x, y, z); ``targets`` (``[k, 4, 4]``, or ``[4, 4]`` for one arm) are a star in
    the arm's colour with thinner axes, and ``trail`` (``[t, k, 3]``, earlier tip
    positions) a faint line. The axis limits come from :func:`axis_limits`, never from the
    data. Returns ``uint8`` ``[H, W, 3]`` with ``(W, H) = size``, exactly.
    """
    width, height = _check_size(size)
    q = _as_rows(chain, q)
    k = q.shape[0]
    target_poses = None if targets is None else _as_poses(targets, k, "targets")
    trail_points = None if trail is None else _as_trail(trail, k)
    # Half a pixel more than asked for: matplotlib truncates figsize * dpi to whole pixels,
    # and e.g. 0.29 * 100 is 28.999..., which would lose a row.
    fig = Figure(figsize=((width + 0.5) / _DPI, (height + 0.5) / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    # The whole figure for the axes (a 3D subplot's default margins waste a third of it).
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.93), projection="3d")
    _draw_scene(
        ax, chain, q, target_poses, trail_points, title=title or chain.name, small=min(width, height) < 320
    )
    canvas.draw()
    frame = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    assert frame.shape == (height, width, 3), f"rendered {frame.shape}, asked for {(height, width, 3)}"
    return frame


def render_rollout(
    chain: KinematicChain,
    qs: torch.Tensor,
    targets: torch.Tensor,
    path: str | Path,
    *,
    fps: int = 10,
    size: tuple[int, int] = (480, 480),
    title: str | None = None,
) -> Path:
    """Write a rollout of ``k`` arms over ``T`` steps (``qs[T, k, dof]``, ``targets[k, 4, 4]``)
    as an animated GIF, one frame per step, and return the path.

    Rollouts longer than :data:`MAX_GIF_FRAMES` steps are evenly subsampled (the first and
    last steps are always kept), so a GIF stays small. Every frame has the same axis
    limits (:func:`axis_limits`), the tip's path so far as a trail and the step in the title.
    """
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise BadParameterError(
            f"render_rollout writes a GIF, so the path must end in .gif; got {str(path)!r}"
        )
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (0 < fps <= 100):
        raise BadParameterError(
            f"fps must be a number in (0, 100] (GIF frame delays are whole 10 ms); got {fps!r}"
        )
    _check_size(size)
    if not isinstance(qs, torch.Tensor) or qs.dim() != 3 or qs.shape[-1] != chain.dof or qs.shape[0] < 1:
        shape = tuple(qs.shape) if isinstance(qs, torch.Tensor) else type(qs).__name__
        raise ShapeError(
            f"qs must be a tensor [T, k, {chain.dof}] (T >= 1 steps of k arms of {chain.name!r}, "
            f"{chain.dof} joints); got {shape}"
        )
    steps, k = qs.shape[0], qs.shape[1]
    if not isinstance(targets, torch.Tensor) or tuple(targets.shape) != (k, 4, 4):
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ShapeError(f"targets must be a tensor [{k}, 4, 4] (one pose per arm of qs); got {shape}")
    qs = qs.detach().to(dtype=chain.dtype, device=chain.device)
    with torch.no_grad():
        tips = chain.forward_kinematics(qs)[..., :3, 3].cpu()  # [T, k, 3]
    shown = np.unique(np.linspace(0, steps - 1, min(steps, MAX_GIF_FRAMES)).round().astype(int))
    name = title or chain.name
    images = []
    for step in shown.tolist():
        frame = render_frame(
            chain,
            qs[step],
            targets,
            size=size,
            title=f"{name}: step {step}/{steps - 1}",
            trail=tips[: step + 1],
        )
        images.append(_to_image(frame))
    path.parent.mkdir(parents=True, exist_ok=True)
    # No palette optimisation: it saves little here and costs time. (Pillow merges frames
    # that are pixel-identical; the step number in each title keeps them apart.)
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False
    )
    return path


# ---------------------------------------------------------------------- internals


def _draw_scene(ax, chain, q, targets, trail, *, title: str, small: bool) -> None:
    (x0, x1), (y0, y1), (z0, z1) = axis_limits(chain)
    reach = x1
    with torch.no_grad():
        points = skeleton(chain, q).cpu().double().numpy()
        tips = chain.forward_kinematics(q).cpu().double().numpy()
    colors = [f"C{i % 10}" for i in range(len(q))]
    width = 1.5 if small else 2.5
    for i, (pts, tip) in enumerate(zip(points, tips, strict=True)):
        ax.plot(*pts.T, "-o", color=colors[i], markersize=2 if small else 3, linewidth=width)
        _draw_axes(ax, tip, 0.12 * reach, linewidth=1.0 if small else 1.5)
    if targets is not None:
        for i, pose in enumerate(targets):
            ax.scatter(*pose[:3, 3, None], marker="*", s=40 if small else 90, color=colors[i], edgecolors="k")
            _draw_axes(ax, pose, 0.08 * reach, linewidth=0.8, alpha=0.6)
    if trail is not None:
        for i in range(trail.shape[1]):
            ax.plot(*trail[:, i].T, color=colors[i], linewidth=1.0, alpha=0.35)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_zlim(z0, z1)
    ax.set_box_aspect((x1 - x0, y1 - y0, z1 - z0), zoom=0.9)
    font = 5 if small else 8
    ax.tick_params(labelsize=font, pad=0)
    if not small:
        ax.set_xlabel("x (m)", fontsize=font)
        ax.set_ylabel("y (m)", fontsize=font)
        ax.set_zlabel("z (m)", fontsize=font)
    # In figure coordinates, so that the title stays inside the picture at any size.
    ax.figure.text(0.5, 0.99, title, ha="center", va="top", fontsize=font + 2)


def _draw_axes(ax, pose: np.ndarray, length: float, *, linewidth: float, alpha: float = 1.0) -> None:
    origin = pose[:3, 3]
    for axis, color in enumerate("rgb"):
        end = origin + length * pose[:3, axis]
        ax.plot(*np.stack([origin, end]).T, color=color, linewidth=linewidth, alpha=alpha)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 16 <= v <= 8192 for v in size
        )
    )
    if not ok:
        raise BadParameterError(
            f"size must be (width, height) in pixels, two ints from 16 to 8192; got {size!r}"
        )
    return int(size[0]), int(size[1])


def _as_rows(chain: KinematicChain, q: torch.Tensor) -> torch.Tensor:
    """``q`` as ``[k, dof]`` in the chain's dtype and device (one arm if ``[dof]``)."""
    if not isinstance(q, torch.Tensor) or q.dim() not in (1, 2) or q.shape[-1] != chain.dof:
        shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
        raise ShapeError(
            f"q must be a tensor [k, {chain.dof}] or [{chain.dof}] for {chain.name!r}; got {shape}"
        )
    return q.detach().reshape(-1, chain.dof).to(dtype=chain.dtype, device=chain.device)


def _as_poses(poses: torch.Tensor, k: int, name: str) -> np.ndarray:
    if isinstance(poses, torch.Tensor) and poses.dim() == 2:
        poses = poses.unsqueeze(0)
    if not isinstance(poses, torch.Tensor) or tuple(poses.shape) != (k, 4, 4):
        shape = tuple(poses.shape) if isinstance(poses, torch.Tensor) else type(poses).__name__
        raise ShapeError(f"{name} must be a tensor [{k}, 4, 4] (one pose per arm of q); got {shape}")
    return poses.detach().cpu().double().numpy()


def _as_trail(trail: torch.Tensor, k: int) -> np.ndarray:
    if not isinstance(trail, torch.Tensor) or trail.dim() != 3 or tuple(trail.shape[1:]) != (k, 3):
        shape = tuple(trail.shape) if isinstance(trail, torch.Tensor) else type(trail).__name__
        raise ShapeError(
            f"trail must be a tensor [t, {k}, 3] (earlier tip positions of the k arms); got {shape}"
        )
    return trail.detach().cpu().double().numpy()


def _to_image(frame: np.ndarray):
    from PIL import Image  # Pillow comes with matplotlib; imported here as only GIFs need it

    return Image.fromarray(frame)

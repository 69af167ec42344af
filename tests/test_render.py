"""Pictures: exact frame sizes, fixed axis limits, GIFs of rollouts, and IKEnv.render with
TorchRL's PixelRenderTransform / VideoRecorder. Small sizes keep the file fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ikrl.viz.arm
from ikrl import make_env
from ikrl.errors import BadParameterError, IkrlError, ShapeError
from ikrl.kinematics.protocol import random_joints
from ikrl.viz.arm import axis_limits, render_frame, render_rollout

SIZE = (96, 80)  # (width, height): not square, to catch a swapped H and W


def _joints(chain, n: int, seed: int) -> torch.Tensor:
    return random_joints(chain, n, torch.Generator().manual_seed(seed))


@pytest.fixture
def env():
    return make_env("dobot_cr5", batch_size=3, seed=0)


# ---------------------------------------------------------------------- render_frame


def test_frame_is_exactly_the_size_asked_for_and_not_blank(cr5):
    q = _joints(cr5, 2, 1)
    targets = cr5.forward_kinematics(_joints(cr5, 2, 2))
    trail = cr5.forward_kinematics(torch.stack([q, q + 0.1]))[..., :3, 3]
    frame = render_frame(cr5, q, targets, size=SIZE, title="two arms", trail=trail)
    assert frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 20  # arms, axes, text: many colours
    # Sizes where figsize * dpi falls just under a whole pixel (0.57 * 100 = 56.99...).
    assert render_frame(cr5, q[0], size=(113, 57)).shape == (57, 113, 3)


def test_axis_limits_are_fixed_so_frames_differ_only_where_the_arms_are(cr5):
    limits = axis_limits(cr5)
    assert limits == axis_limits(cr5)
    points = cr5.skeleton(_joints(cr5, 200, 7))  # other configurations than the estimate's
    for axis, (low, high) in enumerate(limits):
        assert low < float(points[..., axis].min()) and float(points[..., axis].max()) < high

    empty = render_frame(cr5, torch.zeros(0, cr5.dof), size=SIZE)  # axes only
    a = render_frame(cr5, torch.zeros(cr5.dof), size=SIZE)
    b = render_frame(cr5, _joints(cr5, 1, 3), size=SIZE)
    a_differs, b_differs = (a != empty).any(-1), (b != empty).any(-1)
    # Only the few pixels under an arm differ from the bare axes (about 1 %). Were the
    # limits taken from the data, the grid, panes and ticks would move too (over 10 %).
    assert 0 < a_differs.mean() < 0.05 and 0 < b_differs.mean() < 0.05
    moved = (a != b).any(-1)
    assert moved.any() and not (moved & ~a_differs & ~b_differs).any()


def test_frame_rejects_inputs_that_do_not_fit_the_chain(cr5):
    q = torch.zeros(2, cr5.dof)
    with pytest.raises(ShapeError, match=rf"q must be a tensor \[k, {cr5.dof}\]"):
        render_frame(cr5, torch.zeros(2, cr5.dof + 1), size=SIZE)
    with pytest.raises(ShapeError, match=r"targets must be a tensor \[2, 4, 4\]"):
        render_frame(cr5, q, torch.eye(4).expand(3, 4, 4), size=SIZE)
    with pytest.raises(ShapeError, match=r"trail must be a tensor \[t, 2, 3\]"):
        render_frame(cr5, q, trail=torch.zeros(4, 3), size=SIZE)
    with pytest.raises(BadParameterError, match="size must be"):
        render_frame(cr5, q, size=(0, 100))


# ---------------------------------------------------------------------- render_rollout


def test_rollout_gif_has_one_frame_per_step(cr5, tmp_path):
    q = _joints(cr5, 2, 4)
    qs = torch.stack([q + 0.1 * t for t in range(5)])
    targets = cr5.forward_kinematics(q + 0.6)
    path = render_rollout(cr5, qs, targets, tmp_path / "sub" / "rollout.gif", fps=5, size=SIZE)
    assert path == tmp_path / "sub" / "rollout.gif"
    with Image.open(path) as gif:
        assert gif.size == SIZE and gif.n_frames == 5
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0


def test_long_rollouts_are_subsampled_keeping_first_and_last(cr5, tmp_path, monkeypatch):
    titles: list[str] = []
    real = ikrl.viz.arm.render_frame

    def spy(*args, **kwargs):
        titles.append(kwargs["title"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ikrl.viz.arm, "MAX_GIF_FRAMES", 4)
    monkeypatch.setattr(ikrl.viz.arm, "render_frame", spy)
    qs = _joints(cr5, 1, 5) + torch.linspace(0, 1, 10).reshape(10, 1, 1)
    path = render_rollout(
        cr5, qs, torch.eye(4).expand(1, 4, 4), tmp_path / "long.gif", size=SIZE, title="cr5"
    )
    assert titles == ["cr5: step 0/9", "cr5: step 3/9", "cr5: step 6/9", "cr5: step 9/9"]
    with Image.open(path) as gif:
        assert gif.n_frames == 4


def test_rollout_rejects_bad_shapes_and_extensions(cr5, tmp_path):
    qs, targets = torch.zeros(3, 2, cr5.dof), torch.eye(4).expand(2, 4, 4)
    with pytest.raises(ShapeError, match=rf"qs must be a tensor \[T, k, {cr5.dof}\]"):
        render_rollout(cr5, qs[0], targets, tmp_path / "a.gif")
    with pytest.raises(ShapeError, match=rf"qs must be a tensor \[T, k, {cr5.dof}\]"):
        render_rollout(cr5, torch.zeros(3, 2, cr5.dof - 1), targets, tmp_path / "a.gif")
    with pytest.raises(ShapeError, match=r"targets must be a tensor \[2, 4, 4\]"):
        render_rollout(cr5, qs, targets[:1], tmp_path / "a.gif")
    with pytest.raises(BadParameterError, match=r"must end in \.gif"):
        render_rollout(cr5, qs, targets, tmp_path / "a.mp4")
    with pytest.raises(BadParameterError, match="fps"):
        render_rollout(cr5, qs, targets, tmp_path / "a.gif", fps=0)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- IKEnv.render


def test_env_render_needs_a_reset_first(env):
    assert env.render_mode == "rgb_array"
    with pytest.raises(IkrlError, match=r"call env\.reset\(\)"):
        env.render()


def test_env_render_draws_the_last_reset_or_step(env):
    td = env.reset()
    first = env.render(size=SIZE)
    assert first.shape == (SIZE[1], SIZE[0], 3) and first.dtype == np.uint8
    assert env.render(2, size=SIZE).shape == (SIZE[1], SIZE[0], 3)
    assert np.array_equal(env.render(td, size=SIZE), first)  # a tensordict is drawn as given
    td["action"] = env.action_spec.high.clone()
    env.step(td)
    assert not np.array_equal(env.render(size=SIZE), first)
    with pytest.raises(BadParameterError, match="index must be an int from -3 to 2"):
        env.render(3)
    with pytest.raises(BadParameterError, match="draws its 'q' and 'target' entries"):
        env.render(td.exclude("target"))


@pytest.mark.parametrize("pass_tensordict", [False, True])
def test_pixel_render_transform_records_a_rollout(env, pass_tensordict):
    from torchrl.record import PixelRenderTransform

    recorded = env.append_transform(PixelRenderTransform(pass_tensordict=pass_tensordict, size=SIZE))
    rollout = recorded.rollout(3, break_when_any_done=False)  # random actions may reach a target
    assert rollout.batch_size == (3, 3)  # [N arms, T steps]
    # One picture (of the first arms) per step, so TorchRL keeps it as non-tensor data,
    # repeated for each of the N arms: [N, T, H, W, 3].
    pixels = np.asarray(rollout["next", "pixels"])
    assert pixels.shape == (3, 3, SIZE[1], SIZE[0], 3) and pixels.dtype == np.uint8
    assert not np.array_equal(pixels[0, 0], pixels[0, -1])


def test_video_recorder_writes_the_frames(env, tmp_path):
    from torchrl.record import CSVLogger, PixelRenderTransform, VideoRecorder

    logger = CSVLogger("ik", log_dir=str(tmp_path), video_format="pt")  # "pt" needs no video codec
    recorded = env.append_transform(PixelRenderTransform(size=SIZE))
    recorded = recorded.append_transform(VideoRecorder(logger, tag="arms"))
    recorded.rollout(2, break_when_any_done=False)
    recorded.transform[-1].dump()
    (video_file,) = tmp_path.rglob("*.pt")
    video = torch.load(video_file)
    assert video.shape == (1, 3, 3, SIZE[1], SIZE[0]) and video.dtype == torch.uint8  # reset + 2 steps

"""The compiled kinematics (ikrl.kinematics.compiled) against the chain's tensor path."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import ikrl_robots
import numba
import numpy as np
import pytest
import torch

from ikrl.kinematics import compiled
from ikrl.kinematics.chain import Mimic
from ikrl.kinematics.protocol import random_joints

from .test_chain import planar_arm


def _tensor_path(chain, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The differentiable tensor path's answer (asking for a gradient selects it)."""
    pose, jac = chain.forward_kinematics_and_jacobian(q.clone().requires_grad_(True))
    assert jac.requires_grad
    return pose.detach(), jac.detach()


@pytest.mark.parametrize("robot", ["dobot_cr5", "panda", "ur5e"])
@pytest.mark.parametrize("batch", [7, 300])  # the serial loop, and the parallel one
def test_agrees_with_the_tensor_path_in_float64(robot: str, batch: int) -> None:
    chain = ikrl_robots.load(robot, dtype=torch.float64)
    q = random_joints(chain, batch, torch.Generator().manual_seed(1))
    pose, jac = compiled.jacobian(chain, q)
    ref_pose, ref_jac = _tensor_path(chain, q)
    assert pose.dtype == jac.dtype == torch.float64 and jac.shape == (batch, 6, chain.dof)
    assert (pose - ref_pose).abs().max() < 1e-12 and (jac - ref_jac).abs().max() < 1e-12
    assert torch.equal(pose[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(batch, 4))


def test_float32_is_the_float64_answer_rounded_once() -> None:
    exact = ikrl_robots.load("panda", dtype=torch.float64)
    chain = exact.to(dtype=torch.float32)
    q = random_joints(chain, 500, torch.Generator().manual_seed(2))
    pose, jac = compiled.jacobian(chain, q)
    ref_pose, ref_jac = compiled.jacobian(exact, q.double())
    assert pose.dtype == jac.dtype == torch.float32
    assert torch.equal(pose, ref_pose.float()) and torch.equal(jac, ref_jac.float())


@pytest.mark.parametrize(
    ("second", "mimic"), [("prismatic", None), ("revolute", Mimic("j1", multiplier=2.0, offset=0.1))]
)
def test_prismatic_and_mimic_joints(second: str, mimic: Mimic | None) -> None:
    chain = planar_arm(second=second, mimic=mimic)
    q = torch.randn(40, chain.dof, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pose, jac = compiled.jacobian(chain, q)
    ref_pose, ref_jac = _tensor_path(chain, q)
    assert (pose - ref_pose).abs().max() < 1e-12 and (jac - ref_jac).abs().max() < 1e-12


def test_the_chain_uses_it_when_no_gradient_is_wanted_and_keeps_leading_shapes() -> None:
    chain = ikrl_robots.load("dobot_cr5")
    q = random_joints(chain, 24, torch.Generator().manual_seed(4)).view(2, 3, 4, chain.dof)
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    expected_pose, expected_jac = compiled.jacobian(chain, q.reshape(-1, chain.dof))
    assert pose.shape == (2, 3, 4, 4, 4) and jac.shape == (2, 3, 4, 6, chain.dof)
    assert torch.equal(pose.reshape(-1, 4, 4), expected_pose) and torch.equal(jac.reshape(-1, 6, chain.dof), expected_jac)
    assert torch.equal(chain.jacobian(q), jac)
    assert not jac.requires_grad
    empty_pose, empty_jac = compiled.jacobian(chain, q.reshape(-1, chain.dof)[:0])
    assert empty_pose.shape == (0, 4, 4) and empty_jac.shape == (0, 6, chain.dof)


def test_usable_only_where_it_can_stand_in() -> None:
    assert compiled.usable(torch.zeros(3), torch.zeros(2, dtype=torch.float64))
    assert not compiled.usable(torch.zeros(3, dtype=torch.float16))
    assert not compiled.usable(torch.zeros(3), torch.zeros(3, requires_grad=True))
    assert not compiled.usable(torch.zeros(3, device="meta"))
    with torch.no_grad():
        assert compiled.usable(torch.zeros(3, requires_grad=True))


def test_numba_follows_torchs_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        compiled.match_torch_threads()
        assert numba.get_num_threads() == 1
        pool = int(numba.config.NUMBA_NUM_THREADS)  # pyright: ignore[reportAttributeAccessIssue]
        torch.set_num_threads(pool + 1)  # more than numba's pool: capped at the pool
        compiled.match_torch_threads()
        assert numba.get_num_threads() == pool
    finally:
        torch.set_num_threads(before)
        compiled.match_torch_threads()


_TOY_ROWS = """
import numba
from ikrl.kinematics.compiled import serial_and_parallel


def _rows(out):
    for i in numba.prange(out.shape[0]):
        out[i] = numba.get_thread_id()


SERIAL, PARALLEL = serial_and_parallel(_rows)
"""


def _threads_used(build: str, tmp_path) -> int:
    """Distinct numba threads a fresh process's ``build`` of the toy loop ran its rows on."""
    script = f"import numpy as np, toy_rows; out = np.zeros(64); toy_rows.{build}(out); print(len(set(out.tolist())))"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_NUM_THREADS": "2", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{build} exited with {done.returncode}: {done.stderr}"
    return int(done.stdout)


def test_serial_and_parallel_builds_keep_their_own_cache_entries(tmp_path) -> None:
    # numba keys its disk cache by name, line and types, not by options: two builds of one
    # function used to share an entry, the second loading the first (a "parallel" loop on
    # one thread, here a crash). Each build runs in a fresh process: only the cache links
    # them. (Not the other way round: in numba 0.68 a *serial* loop calling get_thread_id
    # crashes when loaded from the cache, whatever this test checks.)
    (tmp_path / "toy_rows.py").write_text(_TOY_ROWS)
    assert _threads_used("SERIAL", tmp_path) == 1
    assert _threads_used("PARALLEL", tmp_path) == 2
    assert _threads_used("PARALLEL", tmp_path) == 2  # now from its own cache entry
    indexes = sorted(path.name.split("-")[0] for path in (tmp_path / "cache").rglob("*.nbi"))
    assert indexes == ["toy_rows._rows", "toy_rows._rows_parallel"]


@pytest.mark.parametrize("module", ["ikrl.kinematics.compiled", "ikrl.kinematics.fused", "ikrl.solver.kernel"])
def test_ikrls_parallel_loops_are_built_by_serial_and_parallel(module: str) -> None:
    builds = importlib.import_module(module)
    assert builds._SERIAL.targetoptions.get("parallel") is None
    assert builds._PARALLEL.targetoptions["parallel"] is True
    assert builds._PARALLEL.py_func.__qualname__ == builds._SERIAL.py_func.__qualname__ + "_parallel"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pose_defects_are_numpys_in_float64(dtype) -> None:
    from ikrl.kinematics import se3

    poses = se3.se3_exp(torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    poses[1, :3, :3] *= 1.5  # scaled
    poses[2, 0, 1] += 0.3  # sheared
    poses[3, 3, :] = torch.tensor([0.1, 0.0, 0.0, 0.9], dtype=torch.float64)  # bottom row
    poses[4, :3, 0] *= -1  # a reflection
    poses[5, 2, 3] = float("nan")
    values = poses.to(dtype).numpy().astype(np.float64)
    n = len(values)
    finite, off, bottom, det = np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n), np.empty(n)
    assert not compiled.pose_defects(poses.to(dtype).numpy(), 1e-4, finite, off, bottom, det)
    assert compiled.pose_defects(poses[:1].to(dtype).numpy(), 1e-4, finite, off, bottom, det)
    compiled.pose_defects(poses.to(dtype).numpy(), 1e-4, finite, off, bottom, det)
    rotation = values[:, :3, :3]
    assert finite.tolist() == [True] * 5 + [False]
    sane = slice(0, 5)
    expected_off = np.abs(rotation.transpose(0, 2, 1) @ rotation - np.eye(3)).reshape(n, 9).max(-1)
    np.testing.assert_allclose(off[sane], expected_off[sane], atol=1e-12)
    np.testing.assert_allclose(bottom[sane], np.abs(values[:, 3] - [0, 0, 0, 1]).max(-1)[sane], atol=1e-12)
    np.testing.assert_allclose(det[sane], np.linalg.det(rotation)[sane], atol=1e-12)
    assert off[1] > 1 and off[2] > 0.1 and bottom[3] == pytest.approx(0.1) and det[4] < 0 < det[0]

"""The compiled kinematics (ikrl.kinematics.compiled) against the chain's tensor path."""

from __future__ import annotations

import ikrl_robots
import numba
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

"""The batched solver: reachable targets solved within limits, unreachable ones reported as
failures, singular configurations in float32, the result's errors checked independently."""

from __future__ import annotations

import math
import re

import ikrl_robots
import pytest
import torch

from ikrl.errors import BadParameterError, ShapeError
from ikrl.kinematics.protocol import bounds, random_joints
from ikrl.kinematics.se3 import pose_errors, so3_log
from ikrl.solver.pool import _damped_step, _error, _held_step, _seed_table_neighbours, _turned, solve


def reachable(chain, n, seed=0):
    low, high = bounds(chain)
    generator = torch.Generator().manual_seed(seed)
    q = low + (high - low) * torch.rand(n, chain.dof, generator=generator, dtype=chain.dtype)
    return q, chain.forward_kinematics(q)


@pytest.fixture(autouse=True, params=["compiled", "tensor"])
def backend(request, monkeypatch):
    """Every test here runs on both paths of the solver: ``backend="auto"`` then takes the
    compiled one (numba) or, with its size bound at 0, the tensor one."""
    import ikrl.solver.pool as pool

    if request.param == "tensor":
        monkeypatch.setattr(pool, "COMPILED_UP_TO", 0)
    return request.param


@pytest.mark.parametrize("robot", ["dobot_cr5", "panda", "ur5e"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_reachable_targets_are_solved_within_limits(robot, dtype):
    chain = ikrl_robots.load(robot, dtype=dtype)
    _, targets = reachable(chain, 100)
    result = solve(chain, targets, seed=1)
    assert result.success_rate >= 0.99  # the benchmark measures the full rate on 1,000
    assert ((result.q >= chain.lower) & (result.q <= chain.upper)).all()
    # The reported errors and flags are those of the returned joints, computed here again.
    position, rotation = pose_errors(chain.forward_kinematics(result.q), targets)
    torch.testing.assert_close(result.position_error, position)
    torch.testing.assert_close(result.rotation_error, rotation)
    assert torch.equal(result.success, (position < 1e-3) & (rotation < math.radians(1)))
    assert (result.iterations[result.success] >= 0).all() and result.q.dtype == dtype


def test_starts_at_the_answer_take_no_iterations():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    q, targets = reachable(chain, 10)
    result = solve(chain, targets, starts=q)
    assert result.success.all() and (result.iterations == 0).all() and (result.attempts == 1).all()
    torch.testing.assert_close(result.q, q)


def test_unreachable_targets_are_failures_never_successes():
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, targets = reachable(chain, 6)
    far = targets.clone()
    far[:3, :3, 3] *= 5.0  # five times as far from the base as any reachable pose
    result = solve(chain, far, restarts=5, seed=1)
    assert not result.success[:3].any()
    assert (result.position_error[:3] > 0.5).all()
    assert (result.attempts[:3] == 6).all()  # every candidate was tried before giving up
    assert result.success[3:].all()


def test_singular_configurations_in_float32_do_not_fail():
    # The UR5e stretched straight up (and a wrist singularity): J loses rank.
    chain = ikrl_robots.load("ur5e", dtype=torch.float32)
    q = torch.tensor([[0.0, -math.pi / 2, 0.0, -math.pi / 2, 0.0, 0.0], [0.3, -1.0, 1.2, 0.4, 0.0, 0.2]])
    assert torch.linalg.svdvals(chain.jacobian(q)).min(-1).values.max() < 1e-3
    targets = chain.forward_kinematics(q)
    result = solve(chain, targets, starts=q + 0.05)
    assert torch.isfinite(result.q).all()
    assert result.success.all()


def test_continuous_joints_are_wrapped():
    import ikrl

    from .conftest import TOY_ARM_URDF

    chain = ikrl.load_chain(TOY_ARM_URDF, dtype=torch.float64)
    q, targets = reachable(chain, 20)
    result = solve(chain, targets, starts=q + torch.tensor([6.0, 0, 0, 0], dtype=torch.float64))
    assert result.success.all()
    assert ((result.q[:, 0] >= -math.pi) & (result.q[:, 0] < math.pi)).all()


def test_bad_inputs():
    chain = ikrl_robots.load("panda")
    with pytest.raises(ShapeError, match=r"targets must be poses of shape \(N, 4, 4\); got \(4, 4\)"):
        solve(chain, torch.eye(4))
    with pytest.raises(ShapeError, match=r"starts must have shape \(2, 7\) or \(2, K, 7\) for 2 targets; got \(2, 6\)"):
        solve(chain, torch.eye(4).expand(2, 4, 4), starts=torch.zeros(2, 6))


def test_statistics_summarise_the_batch():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    q, targets = reachable(chain, 10, seed=4)
    result = solve(chain, targets, restarts=0, seeds=0, starts=torch.zeros_like(q))
    stats = result.statistics(chain)
    assert stats["targets"] == 10 and stats["solved"] == int(result.success.sum())
    assert stats["position_error_max"] == float(result.position_error.double().max())
    assert stats["rotation_error_median"] == float(result.rotation_error.double().median())
    assert stats["iterations_max"] == int(result.iterations.max()) and stats["within_limits"] == 1.0
    outside = type(result)(result.q + 10.0, result.success, result.position_error, result.rotation_error, result.iterations, result.attempts)
    assert outside.statistics(chain)["within_limits"] == 0.0


def test_several_starts_per_target_are_tried_in_order_before_the_seed_table():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    q, targets = reachable(chain, 12, seed=3)
    far = torch.zeros_like(q)
    # The answer itself as each target's second start: with no restarts beyond those two,
    # every target is solved, the first start having been tried first.
    result = solve(chain, targets, starts=torch.stack([far, q], 1), restarts=1, seeds=0)
    assert bool(result.success.all()) and bool((result.attempts <= 2).all())
    alone = solve(chain, targets, starts=far, restarts=0, seeds=0)
    assert not bool(alone.success.all())  # the first start alone does not solve them all
    with pytest.raises(ShapeError, match=r"starts must have shape \(12, 7\) or \(12, K, 7\) for 12 targets; got \(12, 0, 7\)"):
        solve(chain, targets, starts=torch.zeros(12, 0, 7, dtype=torch.float64))


def test_the_solver_does_not_start_on_answers_drawn_from_the_same_seed():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 50, seed=0)
    result = solve(chain, targets, seed=0, restarts=0)
    assert (result.iterations > 0).all()  # no start was already a solution


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_iters": 0}, "max_iters must be an int >= 1; got 0"),
        ({"restarts": -1}, "restarts must be an int >= 0; got -1"),
        ({"seeds": 2.5}, "seeds must be an int from 0 to 4194304; got 2.5"),
        ({"seeds": 10**10}, "seeds must be an int from 0 to 4194304; got 10000000000"),
        ({"position_tolerance": 0.0}, "position_tolerance must be a positive finite number; got 0.0"),
        ({"rotation_tolerance": math.inf}, "rotation_tolerance must be a number of radians in (0, pi] (math.radians(1) for 1 degree); got inf"),
        ({"rotation_tolerance": 10.0}, "rotation_tolerance must be a number of radians in (0, pi] (math.radians(1) for 1 degree); got 10.0"),
        ({"rotation_tolerance": True}, "rotation_tolerance must be a number of radians in (0, pi] (math.radians(1) for 1 degree); got True"),
    ],
)
def test_bad_settings_name_what_would_be_right(kwargs, message):
    chain = ikrl_robots.load("panda")
    with pytest.raises(BadParameterError, match=re.escape(message)):
        solve(chain, torch.eye(4).expand(1, 4, 4), **kwargs)


def test_without_restarts_or_seed_table_each_target_gets_one_uniform_start():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 30)
    result = solve(chain, targets, restarts=0, seeds=0, max_iters=3, seed=2)
    assert (result.attempts == 1).all() and (result.iterations <= 3).all()
    assert result.success_rate < 0.5  # three iterations from anywhere rarely reach 1 mm


def test_the_step_error_matches_pose_errors_and_the_rotation_log():
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, poses = reachable(chain, 64, seed=3)
    _, goals = reachable(chain, 64, seed=4)
    goals[0] = poses[0]  # a zero error
    error, position, rotation = _error(poses, goals)
    reference_position, reference_rotation = pose_errors(poses, goals)
    torch.testing.assert_close(position, reference_position)
    torch.testing.assert_close(rotation, reference_rotation)
    torch.testing.assert_close(error[:, :3], goals[:, :3, 3] - poses[:, :3, 3])
    # The rotation part: the log of R_goal R_pose^T (base frame), away from angle pi.
    log = so3_log(goals[:, :3, :3] @ poses[:, :3, :3].transpose(-1, -2))
    away = rotation < 3.0
    torch.testing.assert_close(error[away, 3:], log[away])


@pytest.mark.parametrize("dof", [4, 6, 7, 9])
def test_the_damped_step_in_joint_or_task_space_is_the_normal_equations_solution(dof):
    generator = torch.Generator().manual_seed(dof)
    jac = torch.randn(32, 6, dof, generator=generator, dtype=torch.float64)
    error = torch.randn(32, 6, generator=generator, dtype=torch.float64)
    damping = torch.rand(32, generator=generator, dtype=torch.float64) + 1e-3
    jt = jac.transpose(-1, -2)
    expected = torch.linalg.solve(jt @ jac + damping[:, None, None] * torch.eye(dof, dtype=torch.float64), jt @ error[..., None])
    torch.testing.assert_close(_damped_step(jac, error, damping), expected.squeeze(-1))
    if dof <= 6:  # joint space takes J^T e when the caller has it
        torch.testing.assert_close(_damped_step(jac, error, damping, (jt @ error[..., None]).squeeze(-1)), expected.squeeze(-1))


def test_joints_at_a_limit_pushed_outwards_are_held_and_the_others_solve_without_them():
    chain = ikrl_robots.load("dobot_cr5", dtype=torch.float64)
    generator = torch.Generator().manual_seed(7)
    jac = torch.randn(3, 6, 6, generator=generator, dtype=torch.float64)
    error = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    damping = torch.full((3,), 1e-2, dtype=torch.float64)
    descent = (jac.transpose(-1, -2) @ error[..., None]).squeeze(-1)
    low, high = bounds(chain)
    q = (0.5 * (low + high)).expand(3, 6).clone()
    # Row 0: joint 0 at the limit its descent points past, held. Row 1: joint 2 at the
    # other limit, so free. Row 2: nothing at a limit.
    q[0, 0] = low[0] if descent[0, 0] < 0 else high[0]
    q[1, 2] = high[2] if descent[1, 2] < 0 else low[2]
    step = _held_step(chain, q, jac, error, damping)
    assert step[0, 0] == 0
    free = [1, 2, 3, 4, 5]
    torch.testing.assert_close(step[0, free], _damped_step(jac[:1, :, free], error[:1], damping[:1])[0])
    torch.testing.assert_close(step[1:], _damped_step(jac[1:], error[1:], damping[1:]))


def test_joints_stuck_at_a_limit_of_a_full_turn_are_turned_over():
    chain = ikrl_robots.load("dobot_cr5", dtype=torch.float64)  # joint 1 in [-3.14, 3.14], joint 6 in [-6.28, 6.28]
    q = torch.tensor([[-3.13, 0.0, 2.86, 3.14, 1.0, 6.28]], dtype=torch.float64)
    turned = _turned(chain, q)
    # Joints 1, 4 and 6 turn (joint 1 and 4 then clamp into their limits); joint 3's span
    # is under a full turn and joint 2 and 5 sit far from their limits.
    expected = torch.tensor([[3.14, 0.0, 2.86, -3.14, 1.0, 6.28 - 2 * math.pi]], dtype=torch.float64)
    torch.testing.assert_close(turned, expected, atol=1e-12, rtol=0)
    # A turn that needs no clamp leaves the pose as it was.
    wrist = torch.tensor([[0.3, 0.2, 0.1, 0.4, 0.5, 6.28]], dtype=torch.float64)
    torch.testing.assert_close(chain.forward_kinematics(_turned(chain, wrist)), chain.forward_kinematics(wrist))


def test_seed_table_neighbours_are_the_nearest_entry_of_each_part():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 20, seed=5)
    neighbours = _seed_table_neighbours(chain, targets, 64, torch.Generator().manual_seed(9))
    table_q = random_joints(chain, 64, torch.Generator().manual_seed(9))  # the same draws
    table = chain.forward_kinematics(table_q)

    def distance(poses):  # brute force, same metric: position and 0.2 m per unit of rotation matrix
        return ((poses[..., :3, 3] - targets[:, None, :3, 3]) ** 2).sum(-1) + 0.04 * (
            (poses[..., :3, :3] - targets[:, None, :3, :3]) ** 2
        ).sum((-1, -2))

    every = distance(table.expand(20, 64, 4, 4))
    parts = every.view(20, 8, 8).min(-1).values.sort(-1).values  # 8 parts of 8 entries
    found = distance(chain.forward_kinematics(neighbours))
    torch.testing.assert_close(found, parts)
    torch.testing.assert_close(found[:, 0], every.min(-1).values)  # the first is the nearest of all


def test_no_targets_give_an_empty_result():
    chain = ikrl_robots.load("panda")
    result = solve(chain, torch.zeros(0, 4, 4))
    assert result.q.shape == (0, 7) and result.success.shape == (0,) and result.success_rate == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_solving_on_cuda_matches_the_cpu_verdicts():
    chain = ikrl_robots.load("ur5e", dtype=torch.float32).to(device="cuda")
    _, targets = reachable(chain.to(device="cpu"), 64)
    result = solve(chain, targets.to("cuda"), seed=1)
    assert result.q.device.type == "cuda" and result.success_rate >= 0.99
    position, rotation = pose_errors(chain.forward_kinematics(result.q).cpu().double(), targets.double())
    assert bool(((position < 1e-3) & (rotation < math.radians(1.0)))[result.success.cpu()].all())


def test_float32_solutions_at_a_limit_are_within_the_float64_limit():
    # A float32 limit rounded outward would let a solution at the limit exceed the URDF's
    # value by ~2e-7 rad when read in float64; the chain rounds its float32 limits inward.
    chain = ikrl_robots.load("panda").to(dtype=torch.float32)
    exact = chain.to(dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    q = random_joints(exact, 400, generator)
    at_limit = torch.rand(q.shape, generator=generator, dtype=torch.float64) < 0.3
    q = torch.where(at_limit, torch.where(torch.rand(q.shape, generator=generator) < 0.5, exact.lower, exact.upper), q)
    result = solve(chain, exact.forward_kinematics(q).float(), seed=0)
    solved = result.q.double()
    assert bool((solved >= exact.lower).all() & (solved <= exact.upper).all())
    assert bool((solved == chain.upper.double()).any() | (solved == chain.lower.double()).any())  # some sit at a limit
    assert result.statistics(chain)["within_limits"] == 1.0


def test_both_backends_judge_alike_and_the_compiled_errors_are_pose_errors(backend):
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 50, seed=3)
    compiled = solve(chain, targets, backend="compiled")
    tensor = solve(chain, targets, backend="tensor")
    assert bool(compiled.success.all()) and bool(tensor.success.all())
    position, rotation = pose_errors(chain.forward_kinematics(compiled.q), targets)
    assert torch.allclose(position, compiled.position_error, atol=1e-12) and torch.allclose(rotation, compiled.rotation_error, atol=1e-9)
    assert compiled.q.dtype == tensor.q.dtype == torch.float64 and compiled.iterations.dtype == torch.int64


def test_the_compiled_path_repeats_with_a_seed_and_any_number_of_threads(backend):
    chain = ikrl_robots.load("ur5e", dtype=torch.float32)
    _, targets = reachable(chain, 80, seed=4)  # above PARALLEL_FROM: the parallel loop
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = solve(chain, targets, seed=9, backend="compiled")
        torch.set_num_threads(2)
        two = solve(chain, targets, seed=9, backend="compiled")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.q, two.q) and torch.equal(one.attempts, two.attempts)


def test_backend_names_and_where_the_compiled_path_cannot_run(backend):
    chain = ikrl_robots.load("ur5e", dtype=torch.float32)
    _, targets = reachable(chain, 2)
    with pytest.raises(BadParameterError, match=r"^solve: backend must be 'auto' or 'compiled' or 'tensor'; got 'fast'$"):
        solve(chain, targets, backend="fast")

    class Wrapped:  # a KinematicChain that is not a Chain
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

    with pytest.raises(BadParameterError, match=r"backend 'compiled' cannot run here: it runs a Chain on the CPU; got Wrapped on cpu"):
        solve(Wrapped(chain), targets, backend="compiled")
    assert bool(solve(Wrapped(chain), targets).success.all())  # auto: the tensor path


def test_a_small_seed_table_gives_the_same_first_step_on_both_paths(backend):
    # With 3 table entries there are 3 table parts (not 8): each path's one candidate is the
    # nearest entry, and one iteration from it is the same step in float64.
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, targets = reachable(chain, 4, seed=6)
    compiled = solve(chain, targets, seeds=3, restarts=0, max_iters=1, backend="compiled")
    tensor = solve(chain, targets, seeds=3, restarts=0, max_iters=1, backend="tensor")
    assert torch.allclose(compiled.q, tensor.q, atol=1e-9)


def test_many_targets_rank_the_seed_table_in_one_product_as_one_target_scans_it(backend, monkeypatch):
    # From kernel.RANK_BY_MATMUL_FROM targets on, the compiled path ranks the table for all
    # targets in one matrix product; each candidate (the nearest of each part, in order)
    # must be the one a per-target scan, and the tensor path, would pick.
    from ikrl.solver import kernel

    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, targets = reachable(chain, kernel.RANK_BY_MATMUL_FROM + 16, seed=7)
    settings = {"seeds": 512, "restarts": 3, "max_iters": 1}
    by_product = solve(chain, targets, **settings, backend="compiled")
    monkeypatch.setattr(kernel, "RANK_BY_MATMUL_FROM", 10**9)
    by_scan = solve(chain, targets, **settings, backend="compiled")
    tensor = solve(chain, targets, **settings, backend="tensor")
    assert torch.equal(by_product.q, by_scan.q) and torch.equal(by_product.attempts, by_scan.attempts)
    assert torch.allclose(by_product.q, tensor.q, atol=1e-9)


def test_a_warm_start_gets_the_nearest_seed_table_entry_on_both_paths(backend):
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 5, seed=8)
    given = {}

    def record(name):
        def warm_start(q):
            given[name] = q.clone()
            return q
        return warm_start

    for name in ("compiled", "tensor"):
        solve(chain, targets, warm_start=record(name), seed=2, backend=name)
    assert given["compiled"].shape == (5, chain.dof) and torch.equal(given["compiled"], given["tensor"])
    # ... which is where a search with no warm start starts: its first candidate.
    plain = solve(chain, targets, seed=2, restarts=0, max_iters=1, backend="compiled")
    warmed = solve(chain, targets, warm_start=lambda q: q, seed=2, restarts=0, max_iters=1, backend="compiled")
    assert torch.equal(plain.q, warmed.q)

"""Chain: closed-form kinematics, hand-checked CR5 poses, batching, dtypes, errors."""

from __future__ import annotations

import math

import pytest
import torch

import ikrl
from ikrl.errors import JointInputError
from ikrl.kinematics.chain import Chain, Joint, Mimic
from ikrl.kinematics.protocol import bounds, into_limits, random_joints

from .conftest import CR5_URDF


def origin(x=0.0, y=0.0, z=0.0) -> torch.Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 3] = torch.tensor([x, y, z], dtype=torch.float64)
    return pose


def planar_arm(l1=0.7, l2=0.4, *, second="revolute", mimic=None, dtype=torch.float64) -> Chain:
    """Two joints about z in the xy plane, links along x (closed forms below)."""
    joints = [
        Joint("j1", "revolute", "base", "l1", origin(), (0, 0, 1), -3, 3),
        Joint("j2", second, "l1", "l2", origin(l1), (0, 0, 1), -3, 3, mimic=mimic),
        Joint("tool", "fixed", "l2", "tip", origin(l2)),
    ]
    return Chain.from_joints(joints, tip="tip", name="planar", dtype=dtype)


def test_planar_arm_matches_closed_form_pose_and_jacobian():
    chain = planar_arm()
    q = torch.tensor([[0.3, -1.1], [2.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    q1, q2 = q[:, 0], q[:, 1]
    x = 0.7 * torch.cos(q1) + 0.4 * torch.cos(q1 + q2)
    y = 0.7 * torch.sin(q1) + 0.4 * torch.sin(q1 + q2)
    torch.testing.assert_close(pose[:, 0, 3], x)
    torch.testing.assert_close(pose[:, 1, 3], y)
    torch.testing.assert_close(pose[:, 2, 3], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(pose[:, 0, 0], torch.cos(q1 + q2))
    expected = torch.zeros(3, 6, 2, dtype=torch.float64)
    expected[:, 0, 0], expected[:, 1, 0] = -y, x
    expected[:, 0, 1] = -0.4 * torch.sin(q1 + q2)
    expected[:, 1, 1] = 0.4 * torch.cos(q1 + q2)
    expected[:, 5, :] = 1.0
    torch.testing.assert_close(jac, expected)


def test_prismatic_joint_slides_along_its_axis():
    chain = planar_arm(second="prismatic")  # j2 slides along z of l1
    q = torch.tensor([0.4, 0.25], dtype=torch.float64)
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    expected = torch.tensor([1.1 * math.cos(0.4), 1.1 * math.sin(0.4), 0.25], dtype=torch.float64)
    torch.testing.assert_close(pose[:3, 3], expected)
    torch.testing.assert_close(jac[:, 1], torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.float64))
    assert chain.joint_types == ("revolute", "prismatic")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lead", [(), (5,), (300,), (2, 150)])  # one pose, the bmm path, the batch-last path
def test_forward_kinematics_and_trig_hands_out_the_pass_own_sines(cr5, dtype, lead):
    chain = cr5.to(dtype=dtype)
    q = random_joints(chain, math.prod(lead) or 1, torch.Generator().manual_seed(3)).reshape(*lead, chain.dof)
    tip, trig = chain.forward_kinematics_and_trig(q)
    assert trig is not None
    sin, cos = trig
    assert torch.equal(tip, chain.forward_kinematics(q))
    assert sin.shape == cos.shape == q.shape and sin.dtype == dtype
    assert torch.equal(sin, torch.sin(q)) and torch.equal(cos, torch.cos(q))  # the same numbers, bit for bit


def test_forward_kinematics_and_trig_carries_gradients_and_skips_mimic_chains(cr5):
    cr5 = cr5.to(dtype=torch.float64)
    q = torch.tensor([[0.2, -0.4, 0.9, 0.1, -1.2, 2.0]], dtype=torch.float64, requires_grad=True)
    tip, trig = cr5.forward_kinematics_and_trig(q)
    assert trig is not None
    (tip.sum() + trig[0].sum() + 2 * trig[1].sum()).backward()
    reference = q.detach().clone().requires_grad_()
    (cr5.forward_kinematics(reference).sum() + torch.sin(reference).sum() + 2 * torch.cos(reference).sum()).backward()
    torch.testing.assert_close(q.grad, reference.grad, rtol=0, atol=1e-12)
    # With a mimic joint the pass takes the sines of other angles: none to hand out.
    mimic = planar_arm(mimic=Mimic("j1", multiplier=2.0, offset=0.1))
    tip, trig = mimic.forward_kinematics_and_trig(torch.tensor([[0.35]], dtype=torch.float64))
    assert trig is None and torch.equal(tip, mimic.forward_kinematics(torch.tensor([[0.35]], dtype=torch.float64)))


def test_mimic_joint_follows_its_source():
    chain = planar_arm(mimic=Mimic("j1", multiplier=2.0, offset=0.1))
    assert chain.dof == 1 and chain.joint_names == ("j1",)
    q1 = torch.tensor([0.35], dtype=torch.float64)
    pose, jac = chain.forward_kinematics_and_jacobian(q1)
    a = 0.35
    b = a + 2 * a + 0.1  # absolute angle of the second link
    torch.testing.assert_close(pose[0, 3], torch.tensor(0.7 * math.cos(a) + 0.4 * math.cos(b), dtype=torch.float64))
    # d/dq1 of x: -0.7 sin(a) - 0.4 sin(b) * (1 + 2)
    dx = -0.7 * math.sin(a) - 0.4 * math.sin(b) * 3
    assert jac[0, 0].item() == pytest.approx(dx, abs=1e-12)
    assert jac[5, 0].item() == pytest.approx(3.0, abs=1e-12)


def test_continuous_joints_are_unbounded_and_marked():
    chain = planar_arm(second="continuous")
    assert chain.lower[1].item() == -math.inf and chain.upper[1].item() == math.inf
    assert chain.continuous.tolist() == [False, True]
    assert chain.lower[0].item() == -3.0 and chain.upper[0].item() == 3.0


# The CR5 by hand (see robots/dobot_cr5): at q = 0 the arm stands upright, 0.147 + 0.427
# + 0.357 + 0.116 - 0.001 + 0.001 = 1.048 m up, offset 0.141 + 0.104 = 0.245 m along -y,
# with the flange x axis along -x, y along -z and z along -y. The URDF's 1.5708 for pi/2
# leaves about 1e-5 of slack, hence the tolerance.
CR5_HAND_POSES = [
    ([0, 0, 0, 0, 0, 0], (0.0, -0.245, 1.048), [[-1, 0, 0], [0, 0, -1], [0, -1, 0]]),
    # Joint 1 turns the whole arm about z: -y goes to +x.
    ([math.pi / 2, 0, 0, 0, 0, 0], (0.245, 0.0, 1.048), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
    # Joint 2 turns about -y at 0.147 m: the 0.901 m above it tips over to -x.
    ([0, math.pi / 2, 0, 0, 0, 0], (-0.901, -0.245, 0.147), [[0, 1, 0], [0, 0, -1], [-1, 0, 0]]),
    # Joint 6 spins the flange about its own z axis: the position stays.
    ([0, 0, 0, 0, 0, math.pi], (0.0, -0.245, 1.048), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
]


@pytest.mark.parametrize("q, position, rotation", CR5_HAND_POSES, ids=["zero", "j1", "j2", "j6"])
def test_cr5_hand_checked_poses(q, position, rotation):
    chain = ikrl.load_chain(CR5_URDF, dtype=torch.float64)
    pose = chain.forward_kinematics(torch.tensor(q, dtype=torch.float64))
    torch.testing.assert_close(pose[:3, 3], torch.tensor(position, dtype=torch.float64), atol=2e-5, rtol=0)
    torch.testing.assert_close(pose[:3, :3], torch.tensor(rotation, dtype=torch.float64), atol=2e-5, rtol=0)
    torch.testing.assert_close(pose[3], torch.tensor([0, 0, 0, 1], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_shapes_and_both_batch_paths_agree(cr5, dtype):
    chain = cr5.to(dtype=dtype)
    torch.manual_seed(0)
    q = (torch.rand(300, 6, dtype=dtype) * 2 - 1) * 3  # 300 rows: the batch-last path
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    one_by_one = [chain.forward_kinematics_and_jacobian(row) for row in q[:20]]  # batch-first path
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(pose[:20], torch.stack([p for p, _ in one_by_one]), atol=tol, rtol=0)
    torch.testing.assert_close(jac[:20], torch.stack([j for _, j in one_by_one]), atol=tol, rtol=0)
    torch.testing.assert_close(chain.forward_kinematics(q), pose)
    torch.testing.assert_close(chain.jacobian(q), jac)
    assert pose.dtype == dtype and jac.dtype == dtype
    assert chain.forward_kinematics(q.view(3, 100, 6)).shape == (3, 100, 4, 4)
    assert chain.jacobian(q.view(30, 10, 6)).shape == (30, 10, 6, 6)
    assert chain.forward_kinematics(q[0]).shape == (4, 4)
    assert chain.forward_kinematics(q[:0]).shape == (0, 4, 4)
    assert chain.jacobian(q[:0]).shape == (0, 6, 6)
    assert jac.is_contiguous()


def test_autograd_through_forward_kinematics_matches_the_analytic_jacobian(cr5):
    chain = cr5.to(dtype=torch.float64)
    q = torch.tensor([0.3, -0.7, 1.1, 0.2, -0.4, 0.9], dtype=torch.float64)
    auto = torch.autograd.functional.jacobian(lambda x: chain.forward_kinematics(x)[:3, 3], q)
    torch.testing.assert_close(auto, chain.jacobian(q)[:3])
    # Second order too: the Jacobian itself is differentiable.
    qq = q.clone().requires_grad_(True)
    chain.jacobian(qq).sum().backward()
    assert torch.isfinite(qq.grad).all() and qq.grad.abs().sum() > 0


def test_gradients_flow_through_a_large_batch(cr5):
    q = torch.rand(512, 6, requires_grad=True)
    cr5.forward_kinematics(q)[..., :3, 3].sum().backward()
    assert q.grad.shape == (512, 6) and torch.isfinite(q.grad).all()


def test_to_converts_from_float64_originals(cr5):
    exact = cr5.to(dtype=torch.float64)
    direct = ikrl.load_chain(CR5_URDF, dtype=torch.float64)
    q = torch.rand(10, 6, dtype=torch.float64)
    assert torch.equal(exact.forward_kinematics(q), direct.forward_kinematics(q))
    assert cr5.dtype == torch.float32  # to() returns a new chain
    assert exact.lower.dtype == torch.float64


def test_skeleton_points_of_the_planar_arm():
    chain = planar_arm()
    points = chain.skeleton(torch.tensor([math.pi / 2, 0.0], dtype=torch.float64))
    expected = torch.tensor([[0, 0, 0], [0, 0, 0], [0, 0.7, 0], [0, 1.1, 0]], dtype=torch.float64)
    torch.testing.assert_close(points, expected, atol=1e-12, rtol=0)
    assert chain.skeleton(torch.zeros(300, 2, dtype=torch.float64)).shape == (300, 4, 3)


def test_skeleton_ends_at_the_tip(cr5):
    q = torch.rand(5, 6)
    torch.testing.assert_close(cr5.skeleton(q)[:, -1], cr5.forward_kinematics(q)[:, :3, 3])
    torch.testing.assert_close(cr5.skeleton(q)[:, 0], torch.zeros(5, 3))


def test_wrong_inputs_name_what_is_expected(cr5):
    with pytest.raises(JointInputError, match=r"q must have shape \(\.\.\., 6\) for chain 'dobot_cr5'.*got \(2, 5\)"):
        cr5.forward_kinematics(torch.zeros(2, 5))
    with pytest.raises(JointInputError, match=r"shape \(\.\.\., 6\).*got \(\)"):
        cr5.jacobian(torch.tensor(0.0))
    with pytest.raises(JointInputError, match=r"q is torch.float64 but chain 'dobot_cr5' is torch.float32"):
        cr5.forward_kinematics(torch.zeros(6, dtype=torch.float64))
    with pytest.raises(JointInputError, match="torch.Tensor"):
        cr5.forward_kinematics([0.0] * 6)
    with pytest.raises(JointInputError, match=r"q is on meta but chain 'dobot_cr5' is on cpu"):
        cr5.forward_kinematics(torch.zeros(6, device="meta"))


def test_repr_and_attributes(cr5):
    assert repr(cr5) == "Chain(name='dobot_cr5', base='base_link', tip='Link6', dof=6, dtype=float32, device=cpu)"
    assert cr5.joint_names == tuple(f"joint{i}" for i in range(1, 7))
    assert cr5.lower.shape == cr5.upper.shape == (6,)
    torch.testing.assert_close(cr5.upper, torch.tensor([3.14, 3.14, 2.86, 3.14, 3.14, 6.28]))


@pytest.mark.parametrize("batch", [3, 300])
def test_no_tensor_is_tied_to_the_cpu(cr5, batch):
    # The meta device computes shapes only: any tensor created on the CPU by mistake clashes.
    chain = cr5.to(device="meta")
    q = torch.zeros(batch, 6, device="meta")
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    assert pose.device.type == jac.device.type == "meta"
    assert chain.skeleton(q).shape == (batch, 8, 3)
    assert chain.lower.device.type == "meta" and chain.continuous.device.type == "meta"


def test_bounds_and_into_limits():
    chain = planar_arm(second="continuous")
    low, high = bounds(chain)
    torch.testing.assert_close(low, torch.tensor([-3.0, -math.pi], dtype=torch.float64))
    torch.testing.assert_close(high, torch.tensor([3.0, math.pi], dtype=torch.float64))
    q = torch.tensor([[4.0, 4.0], [-3.5, -4.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    inside = into_limits(chain, q)
    expected = torch.tensor([[3.0, 4.0 - 2 * math.pi], [-3.0, 2 * math.pi - 4.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(inside, expected)
    inside.sum().backward()  # clamped entries pass no gradient, wrapped and inner ones pass 1
    torch.testing.assert_close(q.grad, torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64))
    with pytest.raises(JointInputError, match=r"shape \(\.\.\., 2\)"):
        into_limits(chain, torch.zeros(3, dtype=torch.float64))


def test_random_joints_cover_the_bounds_and_repeat_with_a_seed():
    chain = planar_arm(second="continuous")
    q = random_joints(chain, 2000, torch.Generator().manual_seed(0))
    low, high = bounds(chain)
    assert q.shape == (2000, 2) and q.dtype == torch.float64
    assert ((q >= low) & (q <= high)).all() and (q[:, 1] < math.pi).all()
    # Uniform: each joint's mean is the middle of its range, its spread (high - low) / sqrt(12).
    torch.testing.assert_close(q.mean(0), (low + high) / 2, atol=0.15, rtol=0)
    torch.testing.assert_close(q.std(0), (high - low) / math.sqrt(12), atol=0.1, rtol=0)
    again = random_joints(chain.to(dtype=torch.float32), 2000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.double(), q, atol=1e-6, rtol=0)  # same draws in any dtype

"""SE(3) math: round trips, closed forms, conventions, and finite gradients at 0 and pi."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ikrl import se3
from ikrl.errors import ShapeError

DTYPES = [torch.float32, torch.float64]


def rotation_vectors(max_angle: float):
    """Rotation vectors with angles in [0, max_angle], including exact 0 and tiny ones."""
    unit = st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: sum(x * x for x in v) > 1e-6)
    angle = st.one_of(
        st.just(0.0), st.floats(0, 1e-6), st.floats(0, max_angle), st.floats(max_angle - 1e-3, max_angle)
    )

    def scale(v, a):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n * a for x in v]

    return st.builds(scale, unit, angle)


translations = st.lists(st.floats(-2, 2), min_size=3, max_size=3)


def twist(v, w, dtype):
    return torch.tensor([*v, *w], dtype=dtype)


def axis_angle_matrix(axis, angle):
    """Rodrigues' formula written out, as an independent reference."""
    x, y, z = (a / math.sqrt(sum(c * c for c in axis)) for a in axis)
    c, s, t = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return torch.tensor(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(v=translations, w=rotation_vectors(math.pi - 1e-3))
@settings(max_examples=200, deadline=None)
def test_log_inverts_exp(dtype, v, w):
    xi = twist(v, w, dtype)
    back = se3.se3_log(se3.se3_exp(xi))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(back, xi, atol=tol, rtol=0)


@given(v=translations, w=rotation_vectors(math.pi))
@settings(max_examples=100, deadline=None)
def test_exp_inverts_log_on_poses(v, w):
    pose = se3.se3_exp(twist(v, w, torch.float64))
    again = se3.se3_exp(se3.se3_log(pose))
    torch.testing.assert_close(again, pose, atol=1e-12, rtol=0)


@given(w=rotation_vectors(math.pi))
@settings(max_examples=100, deadline=None)
def test_so3_exp_matches_rodrigues_and_is_a_rotation(w):
    r = se3.so3_exp(torch.tensor(w, dtype=torch.float64))
    angle = math.sqrt(sum(x * x for x in w))
    expected = torch.eye(3, dtype=torch.float64) if angle == 0 else axis_angle_matrix(w, angle)
    torch.testing.assert_close(r, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.linalg.det(r).item() == pytest.approx(1.0, abs=1e-12)


def test_exp_of_pure_translation_and_closed_form_screw():
    xi = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    expected = torch.eye(4, dtype=torch.float64)
    expected[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(se3.se3_exp(xi), expected)
    # A screw about z: rotation by pi/2 about z with v = (1, 0, 0) moves the origin along
    # a quarter circle of radius 1 / (pi/2) (the integral of the rotating velocity).
    theta = math.pi / 2
    xi = torch.tensor([theta, 0.0, 0.0, 0.0, 0.0, theta], dtype=torch.float64)
    pose = se3.se3_exp(xi)
    torch.testing.assert_close(pose[:3, 3], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(pose[:3, :3], axis_angle_matrix((0, 0, 1), theta), atol=1e-12, rtol=0)


@given(v1=translations, w1=rotation_vectors(3.0), v2=translations, w2=rotation_vectors(3.0))
@settings(max_examples=100, deadline=None)
def test_inverse_and_composition(v1, w1, v2, w2):
    a = se3.se3_exp(twist(v1, w1, torch.float64))
    b = se3.se3_exp(twist(v2, w2, torch.float64))
    eye = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(se3.se3_compose(a, se3.se3_inverse(a)), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(se3.se3_inverse(se3.se3_compose(a, b)), se3.se3_inverse(b) @ se3.se3_inverse(a))
    torch.testing.assert_close(se3.se3_inverse(a), torch.linalg.inv(a), atol=1e-12, rtol=0)


@given(v1=translations, w1=rotation_vectors(3.0), v2=translations, w2=rotation_vectors(3.0))
@settings(max_examples=100, deadline=None)
def test_error_twist_carries_current_to_target(v1, w1, v2, w2):
    current = se3.se3_exp(twist(v1, w1, torch.float64))
    target = se3.se3_exp(twist(v2, w2, torch.float64))
    err = se3.error_twist(current, target)
    torch.testing.assert_close(current @ se3.se3_exp(err), target, atol=1e-10, rtol=0)
    # The rotation part's norm is the rotation error of pose_errors.
    _, rotation = se3.pose_errors(current, target)
    assert torch.linalg.vector_norm(err[3:]).item() == pytest.approx(rotation.item(), abs=1e-9)


def test_error_twist_is_in_the_current_frame():
    # The tip is turned by 90 degrees about z; the target is 1 m along the base x axis,
    # which is the tip's -y axis: the error says "move along -y" in the tip frame.
    current = torch.eye(4, dtype=torch.float64)
    current[:3, :3] = axis_angle_matrix((0, 0, 1), math.pi / 2)
    target = torch.eye(4, dtype=torch.float64)
    target[:3, :3] = current[:3, :3]
    target[0, 3] = 1.0
    err = se3.error_twist(current, target)
    torch.testing.assert_close(err, torch.tensor([0.0, -1.0, 0, 0, 0, 0], dtype=torch.float64), atol=1e-12, rtol=0)


@given(v1=translations, w1=rotation_vectors(math.pi), v2=translations, w2=rotation_vectors(math.pi))
@settings(max_examples=100, deadline=None)
def test_pose_errors_match_definitions(v1, w1, v2, w2):
    a = se3.se3_exp(twist(v1, w1, torch.float64))
    b = se3.se3_exp(twist(v2, w2, torch.float64))
    position, rotation = se3.pose_errors(a, b)
    assert position.item() == pytest.approx(torch.dist(a[:3, 3], b[:3, 3]).item(), abs=1e-12)
    relative = a[:3, :3].T @ b[:3, :3]
    cos_angle = ((torch.trace(relative) - 1) / 2).clamp(-1, 1)
    assert rotation.item() == pytest.approx(math.acos(cos_angle.item()), abs=1e-6)  # acos is coarse near 0, pi
    assert 0 <= rotation.item() <= math.pi + 1e-12


def test_rotation_error_is_exact_near_zero_and_pi():
    for angle in [0.0, 1e-9, 1e-4, math.pi - 1e-6, math.pi]:
        target = torch.eye(4, dtype=torch.float64)
        target[:3, :3] = axis_angle_matrix((1, 2, 3), angle)
        _, rotation = se3.pose_errors(torch.eye(4, dtype=torch.float64), target)
        assert rotation.item() == pytest.approx(angle, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_at_pi_returns_an_angle_of_pi(dtype):
    for axis in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -2, 3)]:
        r = axis_angle_matrix(axis, math.pi).to(dtype)
        w = se3.so3_log(r)
        assert torch.linalg.vector_norm(w).item() == pytest.approx(math.pi, abs=1e-5)
        torch.testing.assert_close(se3.so3_exp(w), r, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, math.pi - 1e-3, math.pi - 1e-7])
def test_gradients_are_finite_near_zero_and_pi(dtype, angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=dtype)
    w = axis / axis.norm() * angle
    xi = torch.cat([torch.tensor([0.1, 0.2, -0.3], dtype=dtype), w]).requires_grad_(True)
    out = se3.se3_log(se3.se3_exp(xi))
    out.square().sum().backward()
    assert torch.isfinite(xi.grad).all()
    target = se3.se3_exp(xi.detach())
    current = torch.eye(4, dtype=dtype, requires_grad=True)
    position, rotation = se3.pose_errors(current, target)
    (position + rotation + se3.error_twist(current, target).sum()).backward()
    assert torch.isfinite(current.grad).all()


def test_gradient_of_log_matches_finite_differences():
    torch.manual_seed(0)
    pose = se3.se3_exp(torch.tensor([0.3, -0.2, 0.5, 0.4, 1.1, -0.7], dtype=torch.float64))
    pose = pose.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: se3.se3_log(t), (pose,), eps=1e-7, atol=1e-6)
    xi = torch.tensor([0.3, -0.2, 0.5, 0.4, 1.1, -0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se3.se3_exp, (xi,), eps=1e-7, atol=1e-6)
    small = torch.tensor([0.3, -0.2, 0.5, 1e-4, 2e-4, -1e-4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se3.se3_exp, (small,), eps=1e-7, atol=1e-6)


def test_adjoint_maps_twists_between_frames():
    pose = se3.se3_exp(torch.tensor([0.3, -0.2, 0.5, 0.4, 1.1, -0.7], dtype=torch.float64))
    xi = torch.tensor([0.1, 0.7, -0.4, 0.2, -0.3, 0.9], dtype=torch.float64)

    def hat6(x):
        m = torch.zeros(4, 4, dtype=torch.float64)
        m[:3, :3] = se3.hat(x[3:])
        m[:3, 3] = x[:3]
        return m

    torch.testing.assert_close(hat6(se3.adjoint(pose) @ xi), pose @ hat6(xi) @ se3.se3_inverse(pose))


def test_hat_vee_and_cross_product():
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    b = torch.tensor([0.3, 0.4, -1.0], dtype=torch.float64)
    torch.testing.assert_close(se3.hat(a) @ b, torch.linalg.cross(a, b))
    torch.testing.assert_close(se3.vee(se3.hat(a)), a)


def test_rpy_follows_urdf_convention():
    r, p, y = 0.3, -0.4, 1.2
    expected = axis_angle_matrix((0, 0, 1), y) @ axis_angle_matrix((0, 1, 0), p) @ axis_angle_matrix((1, 0, 0), r)
    torch.testing.assert_close(se3.rpy_to_matrix(torch.tensor([r, p, y], dtype=torch.float64)), expected)


def test_quaternion_of_known_rotations():
    q = se3.matrix_to_quaternion(axis_angle_matrix((0, 0, 1), math.pi / 2))
    s = math.sqrt(0.5)
    torch.testing.assert_close(q, torch.tensor([s, 0, 0, s], dtype=torch.float64))
    q = se3.matrix_to_quaternion(axis_angle_matrix((1, 0, 0), math.pi))
    torch.testing.assert_close(q, torch.tensor([0.0, 1, 0, 0], dtype=torch.float64), atol=1e-15, rtol=0)


def test_functions_are_batched_over_leading_shapes():
    torch.manual_seed(1)
    xi = torch.randn(4, 3, 6, dtype=torch.float64)
    poses = se3.se3_exp(xi)
    assert poses.shape == (4, 3, 4, 4)
    assert se3.se3_log(poses).shape == (4, 3, 6)
    assert se3.adjoint(poses).shape == (4, 3, 6, 6)
    position, rotation = se3.pose_errors(poses, poses[:1])  # broadcasts
    assert position.shape == rotation.shape == (4, 3)
    for i in range(4):
        torch.testing.assert_close(se3.se3_exp(xi[i, 1]), poses[i, 1])


def test_bad_shapes_name_the_expected_shape():
    with pytest.raises(ShapeError, match=r"xi must have shape \(\.\.\., 6\); got \(3,\)"):
        se3.se3_exp(torch.zeros(3))
    with pytest.raises(ShapeError, match=r"T must have shape \(\.\.\., 4, 4\); got \(3, 3\)"):
        se3.se3_log(torch.eye(3))
    with pytest.raises(ShapeError, match="current"):
        se3.pose_errors(torch.eye(3), torch.eye(4))


def test_no_tensor_is_tied_to_the_cpu():
    xi = torch.zeros(5, 6, device="meta")
    pose = se3.se3_exp(xi)
    assert pose.device.type == "meta"
    for out in [se3.se3_log(pose), se3.error_twist(pose, pose), se3.adjoint(pose), se3.se3_inverse(pose), *se3.pose_errors(pose, pose)]:
        assert out.device.type == "meta"


def test_wrap_angle_by_hand():
    tau = 2 * math.pi
    x = torch.tensor([0.0, 3.0, 4.0, -4.0, 7.0, math.pi, -math.pi, tau], dtype=torch.float64)
    expected = torch.tensor([0.0, 3.0, 4.0 - tau, tau - 4.0, 7.0 - tau, -math.pi, -math.pi, 0.0], dtype=torch.float64)
    torch.testing.assert_close(se3.wrap_angle(x), expected)
    y = se3.wrap_angle(torch.tensor([math.pi - 1e-9, math.pi, 3 * math.pi], dtype=torch.float32))
    assert (y < math.pi).all() and (y >= -math.pi).all()
    # Just below -pi, the remainder rounds up to 2 pi: the result must still be below pi.
    below = torch.nextafter(torch.tensor(-math.pi, dtype=torch.float64), torch.tensor(-4.0, dtype=torch.float64))
    assert -math.pi <= float(se3.wrap_angle(below)) < math.pi


@given(v1=translations, w1=rotation_vectors(math.pi), v2=translations, w2=rotation_vectors(math.pi))
@settings(max_examples=100, deadline=None)
def test_error_and_distances_agree_with_their_definitions(v1, w1, v2, w2):
    current = se3.se3_exp(twist(v1, w1, torch.float64))
    target = se3.se3_exp(twist(v2, w2, torch.float64))
    twist_, position, rotation = se3.error_and_distances(current, target)
    torch.testing.assert_close(twist_, se3.se3_log(se3.se3_inverse(current) @ target), atol=1e-9, rtol=0)
    expected_position, expected_rotation = se3.pose_errors(current, target)
    assert torch.equal(position, expected_position) and torch.equal(rotation, expected_rotation)

"""Pinocchio's forward kinematics and Jacobian of a sub-chain of a URDF: the zoo's reference.

Pinocchio reads the same URDF file itself (urdfdom, not urdf-parser-py) into a model of the
whole robot. The chain's joints take the given values and every other joint stays at its
neutral value: those lie above the base or on side branches, so they do not change the pose
of the tip in the base frame (the test of the whole robot's tree, below, checks that the
chain's joints are exactly the Pinocchio joints between base and tip). The whole model, not
one reduced with ``pin.buildReducedModel``: locking SO-100's ``gripper`` joint makes a
frame named like its ``gripper`` link, which Pinocchio refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pinocchio as pin

__all__ = ["SubChain", "rotation_angles"]


class SubChain:
    """The pose of ``tip`` in ``base`` and the ``[6, dof]`` Jacobian (linear rows first, in the
    base frame), for joint values ordered as ``joints``."""

    def __init__(self, urdf: Path, base: str, tip: str, joints: tuple[str, ...]) -> None:
        self.model = model = pin.buildModelFromUrdf(str(urdf))
        self.data = model.createData()
        self.base_id = model.getFrameId(base, pin.BODY)
        self.tip_id = model.getFrameId(tip, pin.BODY)
        assert self.base_id < model.nframes and self.tip_id < model.nframes, (base, tip)
        above_base = set(model.supports[model.frames[self.base_id].parentJoint])
        path = [j for j in model.supports[model.frames[self.tip_id].parentJoint] if j not in above_base]
        names = tuple(model.names[j] for j in path)
        assert names == joints, f"Pinocchio's joints from {base} to {tip} are {names}, not the chain's {joints}"
        self.joints = [model.joints[j] for j in path]

    def limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower, upper, continuous) per chain joint, as Pinocchio read them."""
        continuous = np.array([j.nq == 2 for j in self.joints])
        model = self.model
        lower = np.array([-np.inf if j.nq == 2 else model.lowerPositionLimit[j.idx_q] for j in self.joints])
        upper = np.array([np.inf if j.nq == 2 else model.upperPositionLimit[j.idx_q] for j in self.joints])
        return lower, upper, continuous

    def _configuration(self, q: np.ndarray) -> np.ndarray:
        q_pin = pin.neutral(self.model)
        for value, joint in zip(q, self.joints, strict=True):
            if joint.nq == 2:  # continuous: (cos, sin)
                q_pin[joint.idx_q : joint.idx_q + 2] = (np.cos(value), np.sin(value))
            else:
                q_pin[joint.idx_q] = value
        return q_pin

    def __call__(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``q[B, dof] -> (T[B, 4, 4], J[B, 6, dof])``."""
        poses, jacobians = [], []
        for row in q:
            q_pin = self._configuration(row)
            pin.framesForwardKinematics(self.model, self.data, q_pin)
            base, tip = self.data.oMf[self.base_id], self.data.oMf[self.tip_id]
            full = pin.computeFrameJacobian(self.model, self.data, q_pin, self.tip_id, pin.LOCAL_WORLD_ALIGNED)
            full = np.asarray(full).reshape(6, self.model.nv)
            jacobian = np.stack([full[:, joint.idx_v] for joint in self.joints], axis=1)
            r_t = base.rotation.T
            jacobians.append(np.concatenate([r_t @ jacobian[:3], r_t @ jacobian[3:]]))
            poses.append((base.inverse() * tip).homogeneous)
        return np.stack(poses), np.stack(jacobians)


def rotation_angles(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """The angle of ``R_a^T R_b`` per batch element, accurate for tiny angles (atan2 of the
    sine and cosine, not acos of the trace)."""
    rel = np.swapaxes(r_a, -1, -2) @ r_b
    vee = np.stack([rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]], -1)
    return np.arctan2(0.5 * np.linalg.norm(vee, axis=-1), 0.5 * (np.trace(rel, axis1=-2, axis2=-1) - 1.0))

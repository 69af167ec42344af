"""The robots that ship with ikrl: metadata, loading, and agreement with published parameters."""

from __future__ import annotations

import math

import ikrl_robots
import pytest
import torch

import ikrl
from ikrl.errors import UnknownNameError

from .conftest import example_robot_data_dir


def test_every_shipped_robot_loads_with_its_metadata():
    assert ikrl_robots.names() == ["dobot_cr5", "panda", "ur5e"]
    for name in ikrl_robots.names():
        info = ikrl_robots.info(name)
        assert info.urdf.is_file()
        chain = ikrl_robots.load(name)
        assert (chain.base, chain.tip) == (info.base, info.tip)
        assert 0 < info.position_tolerance < 0.1 and 0 < info.rotation_tolerance < 0.2


def test_shapes_differ_so_nothing_assumes_six_z_axes():
    assert ikrl_robots.load("panda").dof == 7
    assert ikrl_robots.load("ur5e").dof == 6


def test_unknown_robot_suggests_the_closest():
    with pytest.raises(UnknownNameError, match=r"unknown robot 'dobot_cr6'\. Did you mean 'dobot_cr5'\? Known robots: dobot_cr5, panda, ur5e"):
        ikrl_robots.info("dobot_cr6")


def _standard_dh(q, d, a, alpha):
    pose = torch.eye(4, dtype=torch.float64)
    for qi, di, ai, al in zip(q, d, a, alpha, strict=True):
        ct, st, ca, sa = math.cos(qi), math.sin(qi), math.cos(al), math.sin(al)
        pose = pose @ torch.tensor(
            [[ct, -st * ca, st * sa, ai * ct], [st, ct * ca, -ct * sa, ai * st], [0, sa, ca, di], [0, 0, 0, 1]],
            dtype=torch.float64,
        )
    return pose


def _modified_dh(q, a, d, alpha):
    pose = torch.eye(4, dtype=torch.float64)
    for qi, ai, di, al in zip(q, a, d, alpha, strict=True):
        ct, st, ca, sa = math.cos(qi), math.sin(qi), math.cos(al), math.sin(al)
        pose = pose @ torch.tensor(
            [[ct, -st, 0, ai], [st * ca, ct * ca, -sa, -sa * di], [st * sa, ct * sa, ca, ca * di], [0, 0, 0, 1]],
            dtype=torch.float64,
        )
    return pose


def test_panda_matches_frankas_modified_dh_parameters():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    h = math.pi / 2
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        q = chain.lower + (chain.upper - chain.lower) * torch.rand(7, generator=generator, dtype=torch.float64)
        expected = _modified_dh(
            [*q.tolist(), 0.0],
            a=[0, 0, 0, 0.0825, -0.0825, 0, 0.088, 0],
            d=[0.333, 0, 0.316, 0, 0.384, 0, 0, 0.107],
            alpha=[0, -h, h, h, -h, h, h, 0],
        )
        torch.testing.assert_close(chain.forward_kinematics(q), expected, atol=1e-12, rtol=0)


def test_ur5e_matches_urs_standard_dh_parameters():
    # base_link is the DH base turned by pi about z; tool0's z axis is the DH flange z axis.
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))
    h = math.pi / 2
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        q = (torch.rand(6, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
        expected = _standard_dh(
            q.tolist(), d=[0.1625, 0, 0, 0.1333, 0.0997, 0.0996], a=[0, -0.425, -0.3922, 0, 0, 0], alpha=[h, 0, 0, h, -h, 0]
        )
        pose = chain.forward_kinematics(q)
        torch.testing.assert_close(turn @ pose[:3, 3], expected[:3, 3], atol=1e-12, rtol=0)
        torch.testing.assert_close(turn @ pose[:3, 2], expected[:3, 2], atol=1e-12, rtol=0)


def test_panda_matches_the_example_robot_data_panda():
    ours = ikrl_robots.load("panda", dtype=torch.float64)
    theirs = ikrl.load_chain(
        example_robot_data_dir() / "panda_description/urdf/panda.urdf", base="panda_link0", tip="panda_link8", dtype=torch.float64
    )
    q = torch.rand(50, 7, dtype=torch.float64)
    torch.testing.assert_close(ours.forward_kinematics(q), theirs.forward_kinematics(q), atol=1e-12, rtol=0)

"""URDF loading: inputs, tree handling, quiet parsing, and errors that name what was wrong."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import ikrl
from ikrl.errors import (
    ChainError,
    IkrlError,
    UnknownLinkError,
    UnsupportedJointError,
    UrdfError,
    UrdfNotFoundError,
)

from .conftest import CR5_URDF


def urdf(*joints: str, links=None, extra: str = "") -> str:
    """A URDF whose links are inferred from the joints (or given)."""
    names = set(links or [])
    import re

    for j in joints:
        names.update(re.findall(r'link="([^"]+)"', j))
    body = "".join(f'<link name="{n}"/>' for n in sorted(names))
    return f'<?xml version="1.0"?><robot name="test">{body}{"".join(joints)}{extra}</robot>'


def joint(name, parent, child, type="revolute", axis="0 0 1", xyz="0 0 0.1", extra=""):
    limit = '<limit lower="-1" upper="1" effort="1" velocity="1"/>' if type in ("revolute", "prismatic") else ""
    axis_tag = f'<axis xyz="{axis}"/>' if axis else ""
    return (
        f'<joint name="{name}" type="{type}"><parent link="{parent}"/><child link="{child}"/>'
        f'<origin xyz="{xyz}" rpy="0 0 0"/>{axis_tag}{limit}{extra}</joint>'
    )


ARM = [joint("a", "base", "l1"), joint("b", "l1", "l2", axis="0 1 0"), joint("c", "l2", "l3")]


def test_path_text_bytes_and_pathlike_give_the_same_chain(tmp_path):
    text = Path(CR5_URDF).read_text()
    q = torch.rand(4, 6, dtype=torch.float64)
    chains = [
        ikrl.load_chain(CR5_URDF, dtype=torch.float64),
        ikrl.load_chain(str(CR5_URDF), dtype=torch.float64),
        ikrl.load_chain(text, dtype=torch.float64),
        ikrl.load_chain(text.encode(), dtype=torch.float64),
    ]
    for chain in chains[1:]:
        assert torch.equal(chain.forward_kinematics(q), chains[0].forward_kinematics(q))


def test_default_base_is_the_root_and_tip_the_end_of_the_movable_chain():
    xml = urdf(*ARM, joint("flange", "l3", "tool", type="fixed", axis=None), joint("cam", "l1", "camera", type="fixed", axis=None))
    chain = ikrl.load_chain(xml)
    assert (chain.base, chain.tip, chain.dof) == ("base", "l3", 3)
    with_flange = ikrl.load_chain(xml, tip="tool", dtype=torch.float64)
    pose = with_flange.forward_kinematics(torch.zeros(3, dtype=torch.float64))
    assert pose[2, 3].item() == pytest.approx(0.4)  # 3 joints + the flange, 0.1 m each


def test_sub_chain_between_inner_links():
    chain = ikrl.load_chain(urdf(*ARM), base="l1", tip="l2")
    assert chain.joint_names == ("b",)


def test_axes_need_not_be_unit_length():
    short = ikrl.load_chain(urdf(*ARM), dtype=torch.float64)
    long = ikrl.load_chain(
        urdf(joint("a", "base", "l1", axis="0 0 3"), joint("b", "l1", "l2", axis="0 0.2 0"), joint("c", "l2", "l3", axis="0 0 0.5")),
        dtype=torch.float64,
    )
    q = torch.rand(5, 3, dtype=torch.float64)
    torch.testing.assert_close(long.forward_kinematics(q), short.forward_kinematics(q))


def test_unknown_tags_are_quiet_and_logged_at_debug(capsys, caplog):
    # A transmission with a tag urdf-parser-py does not know (as in TIAGo's URDF), an
    # unknown top-level element, link visuals, and an unknown tag inside a joint.
    extra = (
        '<transmission name="t"><type>transmission_interface/SimpleTransmission</type>'
        '<joint name="a"><saturationLower>-1</saturationLower></joint></transmission>'
        '<ros2_control name="hw" type="system"/>'
    )
    xml = urdf(*ARM, extra=extra).replace(
        '<link name="l1"/>', '<link name="l1"><visual><geometry><box size="1 1 1"/></geometry></visual></link>'
    )
    xml = xml.replace('<joint name="b" type="revolute">', '<joint name="b" type="revolute"><vendor_gain>3</vendor_gain>')
    with caplog.at_level(logging.DEBUG, logger="ikrl.kinematics.urdf"):
        chain = ikrl.load_chain(xml)
    assert chain.dof == 3
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    messages = [r.getMessage() for r in caplog.records]
    assert any("ignored: 1 <link/visual>, 1 <transmission>, 1 <ros2_control>" in m for m in messages), messages
    assert any('Unknown tag "vendor_gain"' in m for m in messages), messages


def test_parts_kinematics_does_not_read_cannot_break_loading():
    # urdf-parser-py alone rejects both: a transmission without <type> (as in PR2's URDF)
    # and a texture without a file name (as in iCub's).
    extra = '<transmission name="t"><joint name="a"/><actuator name="m"/></transmission>'
    xml = urdf(*ARM, extra=extra).replace(
        '<link name="l2"/>',
        '<link name="l2"><visual><geometry><box size="1 1 1"/></geometry>'
        '<material name="m"><texture/></material></visual></link>',
    )
    assert ikrl.load_chain(xml).dof == 3


def test_the_root_element_must_be_robot():
    with pytest.raises(UrdfError, match=r"<string>: the root element is <sdf>; a URDF's is <robot>"):
        ikrl.load_chain('<sdf version="1.6"><model name="m"/></sdf>')


def test_malformed_xml_names_the_source(tmp_path):
    bad = tmp_path / "broken.urdf"
    bad.write_text("<robot name='x'><link name='a'></robot>")
    with pytest.raises(UrdfError, match=r"broken\.urdf: not well-formed XML: mismatched tag: line 1"):
        ikrl.load_chain(bad)
    with pytest.raises(UrdfError, match=r"^<string>: not well-formed XML"):
        ikrl.load_chain("<robot>")


def test_invalid_urdf_content_names_the_source():
    # A joint without its required parent element.
    xml = '<robot name="x"><link name="a"/><joint name="j" type="revolute"><child link="a"/></joint></robot>'
    with pytest.raises(UrdfError, match=r"<string>: not a valid URDF"):
        ikrl.load_chain(xml)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.urdf"
    with pytest.raises(UrdfNotFoundError, match=r"nope\.urdf: no such file") as info:
        ikrl.load_chain(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, IkrlError)


def test_unknown_base_or_tip_lists_links_and_suggests():
    with pytest.raises(UnknownLinkError, match=r"unknown tip link 'l4'\. Links: base, l1, l2, l3$"):
        ikrl.load_chain(urdf(*ARM), tip="l4")  # too short to suggest anything
    with pytest.raises(UnknownLinkError, match=r"dobot_cr5\.urdf: unknown tip link 'link6'\. Did you mean 'Link6'\?"):
        ikrl.load_chain(CR5_URDF, tip="link6")
    with pytest.raises(UnknownLinkError, match=r"unknown base link 'bsae'\. Did you mean 'base'\?"):
        ikrl.load_chain(urdf(*ARM), base="bsae")


def test_no_movable_joint():
    fixed = [joint("a", "base", "l1", type="fixed", axis=None), joint("b", "l1", "l2", type="fixed", axis=None)]
    with pytest.raises(ChainError, match=r"no movable joint below base link 'base'"):
        ikrl.load_chain(urdf(*fixed))
    with pytest.raises(ChainError, match=r"no movable joint between base 'base' and tip 'l2'"):
        ikrl.load_chain(urdf(*fixed), tip="l2")


@pytest.mark.parametrize("kind", ["floating", "planar"])
def test_unsupported_joint_on_the_path_is_named(kind):
    xml = urdf(joint("free", "world", "base", type=kind, axis=None), *ARM)
    with pytest.raises(UnsupportedJointError, match=rf"joint 'free' is '{kind}'; a chain can only go through revolute, continuous, prismatic, fixed"):
        ikrl.load_chain(xml, base="world", tip="l3")
    # Elsewhere in the tree it does not matter.
    assert ikrl.load_chain(xml, base="base").dof == 3


def test_tip_must_be_below_base():
    with pytest.raises(ChainError, match=r"tip link 'l1' is not below base link 'l2' \(the links above 'l1' are base\)"):
        ikrl.load_chain(urdf(*ARM), base="l2", tip="l1")
    with pytest.raises(ChainError, match="base and tip are the same link"):
        ikrl.load_chain(urdf(*ARM), base="l1", tip="l1")


def test_ambiguous_default_tip_lists_candidates():
    xml = urdf(*ARM, joint("left", "l3", "finger_l"), joint("right", "l3", "finger_r"))
    with pytest.raises(ChainError, match=r"ends in 2 links \(finger_l, finger_r\)\. Pass tip= one of them, or a link above them such as 'l3'"):
        ikrl.load_chain(xml)


def test_revolute_joint_without_limits():
    xml = urdf(joint("a", "base", "l1"), '<joint name="b" type="revolute"><parent link="l1"/><child link="l2"/><axis xyz="0 0 1"/></joint>')
    with pytest.raises(ChainError, match=r"revolute joint 'b' has no lower/upper limit; give both, or make it continuous"):
        ikrl.load_chain(xml)


def test_bad_limits_and_axis():
    xml = urdf(joint("a", "base", "l1", extra="").replace('lower="-1" upper="1"', 'lower="1" upper="-1"'))
    with pytest.raises(ChainError, match=r"joint 'a' has limits \[1\.0, -1\.0\]; they must be finite with lower <= upper"):
        ikrl.load_chain(xml)
    with pytest.raises(ChainError, match=r"joint 'a' has axis \(0\.0, 0\.0, 0\.0\); it needs a non-zero, finite axis"):
        ikrl.load_chain(urdf(joint("a", "base", "l1", axis="0 0 0")))


def test_mimic_errors():
    def mimic(target):
        return f'<mimic joint="{target}" multiplier="2"/>'
    with pytest.raises(ChainError, match=r"joint 'b' mimics unknown joint 'zz'"):
        ikrl.load_chain(urdf(joint("a", "base", "l1"), joint("b", "l1", "l2", extra=mimic("zz"))))
    cycle = urdf(joint("a", "base", "l1", extra=mimic("b")), joint("b", "l1", "l2", extra=mimic("a")))
    with pytest.raises(ChainError, match=r"mimic joints form a cycle: a -> b -> a"):
        ikrl.load_chain(cycle)


def test_mimic_of_a_joint_off_the_path_becomes_a_variable():
    # A gripper: the right finger mimics the left one, which is on another branch.
    xml = urdf(
        joint("arm", "base", "hand"),
        joint("left", "hand", "finger_l", type="prismatic", axis="0 1 0"),
        joint("right", "hand", "finger_r", type="prismatic", axis="0 -1 0", extra='<mimic joint="left" multiplier="1"/>'),
    )
    chain = ikrl.load_chain(xml, tip="finger_r", dtype=torch.float64)
    assert chain.joint_names == ("arm", "left")
    pose = chain.forward_kinematics(torch.tensor([0.0, 0.02], dtype=torch.float64))
    assert pose[1, 3].item() == pytest.approx(-0.02)


def test_a_link_with_two_parents_is_rejected():
    xml = urdf(joint("a", "base", "l1"), joint("b", "base", "l1"))
    with pytest.raises(ChainError, match=r"link 'l1' is the child of two joints \('a', 'b'\); a robot description must be a tree"):
        ikrl.load_chain(xml)


def test_not_a_path_or_text():
    with pytest.raises(UrdfError, match=r"^load_chain: urdf must be a path \(str or os.PathLike\) or the XML text \(str or bytes\); got int 3$"):
        ikrl.load_chain(3)

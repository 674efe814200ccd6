"""Leak class: safe-private spoofing (issue 12, class 2; leak cases 12-14).

Under Retain Safe Private an element is kept only for the creator the safe list names, at the
element offset it names, in the group it names, holding a value of the VR it names. A creator
that merely resembles a listed one, a listed creator at an unlisted offset or in another group,
and a listed element carrying something other than its VR all go.
"""

from __future__ import annotations

from deid_factories import base_ct, read, request, submit, to_bytes
from pydicom.dataset import Dataset

from services.deid.engine import default_profile

#: (creator, group, element byte, VR, what is wrong with it)
SPOOFS = [
    ("gems_iden_01", 0x0009, 0x01, "LO", "creator in another case"),
    ("GEMS_IDEN_01X", 0x0009, 0x01, "LO", "creator with a suffix"),
    ("GEMS IDEN 01", 0x0009, 0x01, "LO", "creator with spaces for underscores"),
    ("GEMS_IDEN_O1", 0x0009, 0x01, "LO", "creator with a letter O for a zero"),
    ("XGEMS_IDEN_01", 0x0009, 0x01, "LO", "creator with a prefix"),
    ("GEMS_IDEN_01", 0x0009, 0x05, "LO", "listed creator, unlisted offset"),
    ("GEMS_IDEN_01", 0x0011, 0x01, "LO", "listed creator and offset, another group"),
    ("GEMS_ACQU_01", 0x0019, 0x02, "LT", "listed element (SL) holding text"),
    ("GEMS_ACQU_01", 0x0019, 0x03, "LO", "listed element (DS) holding text"),
]


def instance(n: int, implicit: bool = False) -> tuple[Dataset, list[str]]:
    ds = base_ct(sop_uid=f"1.2.3.4.5.6.7.781.3.{n}", implicit=implicit)
    planted = []
    for index, (creator, group, byte, vr, _why) in enumerate(SPOOFS):
        value = f"SPOOFED{index}PHI{n:03d}"
        block = ds.private_block(group, creator, create=True)
        block.add_new(byte, vr, value)
        planted.append(value)
    genuine = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    genuine.add_new(0x01, "LO", "GE_GENESIS_FF")  # listed: kept
    acqu = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    acqu.add_new(0x23, "DS", "39.37")  # listed: kept
    return ds, planted


def test_only_the_listed_creator_offset_group_and_vr_survive() -> None:
    profile = default_profile()
    first = [instance(n) for n in (1, 2, 3)]
    second = [instance(n, implicit=True) for n in (4, 5, 6)]
    results = submit([request(to_bytes(ds), profile) for ds, _ in first])
    # The second submission arrives in implicit VR: the file no longer says the VR.
    results += submit(
        [request(to_bytes(ds, implicit=True), profile) for ds, _ in second],
        separate_process=True,
    )
    for (_original, planted), result in zip(first + second, results, strict=True):
        assert result.data is not None
        for value in planted:
            assert value.encode() not in result.data, value
        out = read(result)
        creators = {str(e.value).strip() for e in out if e.tag.group & 1 and e.tag.element < 0x100}
        assert creators == {"GEMS_IDEN_01", "GEMS_ACQU_01"}
        iden = out.private_block(0x0009, "GEMS_IDEN_01")
        assert out[iden.get_tag(0x01)].value in ("GE_GENESIS_FF", b"GE_GENESIS_FF")
        acqu = out.private_block(0x0019, "GEMS_ACQU_01")
        assert acqu.get_tag(0x23) in out
        assert acqu.get_tag(0x02) not in out
        assert 0x00110010 not in out


def test_spoofed_blocks_are_not_named_in_the_audit() -> None:
    ds, _ = instance(7)
    result = submit([request(to_bytes(ds), default_profile())])[0]
    paths = " ".join(entry.path for entry in result.audit)
    for creator in {s[0] for s in SPOOFS} - {"GEMS_IDEN_01", "GEMS_ACQU_01"}:
        assert f'"{creator}"' not in paths

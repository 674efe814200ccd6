"""Pure rules of the deid service: ID map parsing, profile updates, keys, hold reasons."""

from __future__ import annotations

import pytest

from services.deid import domain
from services.deid.engine import OPTIONS, default_profile


def test_id_map_rows_are_stripped_and_repeats_of_the_same_mapping_are_allowed() -> None:
    rows = domain.parse_id_map("\ufeffID_OLD , id_new\r\n 123 ,P-1 \r\n\r\n123,P-1\r\n9,P-2\r\n")
    assert [(r.line, r.id_old, r.id_new) for r in rows] == [(2, "123", "P-1"), (5, "9", "P-2")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the ID map is empty"),
        ("id_old,id_new\n", "has a header but no rows"),
        ("old,new\n1,2\n", "line 1: the header must be exactly id_old,id_new"),
        ("id_old,id_new\n1,2,3\n", "line 2: expected 2 values"),
        ("id_old,id_new\n,P-1\n", "line 2: id_old is empty"),
        ("id_old,id_new\n1," + "X" * 65 + "\n", "line 2: id_new is longer than 64"),
        ("id_old,id_new\n1,A\\B\n", "line 2: id_new contains"),
        ("id_old,id_new\n1,P-1\n2,P-2\n1,P-3\n", "line 4: id_old on line 2 appears again"),
        ("id_old,id_new\n1,P-1\n2,P-1\n", "line 3: id_new 'P-1' is already given"),
        ('id_old,id_new\n1,"P-1\n', "not valid CSV"),
    ],
)
def test_a_bad_id_map_names_the_line_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(domain.IdMapError, match=message.replace("\\", "\\\\")):
        domain.parse_id_map(text)


def test_generated_pseudonyms_follow_the_collection_name() -> None:
    assert domain.generated_pseudonym("LIDC-IDRI", 1) == "LIDC-IDRI-0001"
    assert domain.generated_pseudonym("Demo-CT", 12345) == "Demo-CT-12345"
    with pytest.raises(ValueError):
        domain.generated_pseudonym("Demo-CT", 0)


def test_a_new_collection_gets_tcia_practice_with_its_id_map_setting() -> None:
    profile = domain.initial_profile(require_id_map=True)
    assert profile.version == 1 and profile.require_id_map
    assert profile.options == default_profile().options


def test_a_profile_update_is_the_next_version_and_no_change_is_no_version() -> None:
    current = domain.initial_profile(False)
    new = domain.updated_profile(current, {"date_shift_scope": "collection"})
    assert new is not None
    assert new.version == 2 and new.date_shift_scope == "collection"
    assert new.options == current.options and new.digest() != current.digest()
    assert domain.updated_profile(new, {"date_shift_scope": "collection"}) is None


def test_a_profile_update_names_the_valid_options() -> None:
    with pytest.raises(domain.ProfileError) as e:
        domain.updated_profile(domain.initial_profile(False), {"options": ["retain_everything"]})
    assert "retain_everything" in str(e.value)
    assert all(option in str(e.value) for option in OPTIONS)


def test_the_engine_refusal_of_a_profile_is_relayed() -> None:
    both = ["retain_long_full_dates", "retain_long_modified_dates"]
    with pytest.raises(domain.ProfileError, match="exclude each other"):
        domain.updated_profile(domain.initial_profile(False), {"options": both})


def test_the_curation_key_comes_from_the_new_uids() -> None:
    ids = {"StudyInstanceUID": "2.25.1", "SeriesInstanceUID": "2.25.2", "SOPInstanceUID": "2.25.3"}
    assert domain.curation_key("Demo-CT", ids) == "Demo-CT/2.25.1/2.25.2/2.25.3.dcm"
    with pytest.raises(ValueError):
        domain.curation_key("Demo-CT", {**ids, "SeriesInstanceUID": ""})


def test_only_a_pixel_hold_is_waived_by_a_release() -> None:
    pixel = "possible burned-in PHI: BurnedInAnnotation is YES"
    assert domain.releases_pixel_hold(pixel) and domain.reason_kind(pixel) == "burned_in_phi"
    assert not domain.releases_pixel_hold(domain.NO_ID_MAP_ENTRY)
    assert domain.reason_kind(domain.NO_ID_MAP_ENTRY) == "no_id_map_entry"


def test_an_unexpected_engine_error_is_named_by_type_only() -> None:
    reason = domain.failure_reason(KeyError("SMITH^JOHN"))
    assert "KeyError" in reason and "SMITH" not in reason

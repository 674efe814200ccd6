"""The standard licences seeded at first start, and the data usage policy every user
accepts once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LicenceSeed:
    id: str
    name: str
    url: str
    text: str
    commercial_use: bool
    requires_approval: bool


_CC_TEXT = (
    "You may share and adapt the data for any purpose{nc}, provided you give appropriate "
    "credit: cite the collection's DOI and this archive, link to the licence, and say if "
    "changes were made. The full legal code is at the licence URL."
)

#: Names and URLs as intake's built-in licences have them (services/intake/domain.py;
#: tests/intake/test_licences.py checks they agree): a collection shows the same licence
#: whether intake resolved it from auth's announcement or, before that, from its own list.
SEED_LICENCES = (
    LicenceSeed(
        "CC-BY-4.0",
        "CC BY 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
        _CC_TEXT.format(nc=", even commercially"),
        commercial_use=True,
        requires_approval=False,
    ),
    LicenceSeed(
        "CC-BY-3.0",
        "CC BY 3.0",
        "https://creativecommons.org/licenses/by/3.0/",
        _CC_TEXT.format(nc=", even commercially"),
        commercial_use=True,
        requires_approval=False,
    ),
    LicenceSeed(
        "CC-BY-NC-4.0",
        "CC BY-NC 4.0",
        "https://creativecommons.org/licenses/by-nc/4.0/",
        _CC_TEXT.format(nc=" except commercial use"),
        commercial_use=False,
        requires_approval=False,
    ),
    LicenceSeed(
        "CC-BY-NC-3.0",
        "CC BY-NC 3.0",
        "https://creativecommons.org/licenses/by-nc/3.0/",
        _CC_TEXT.format(nc=" except commercial use"),
        commercial_use=False,
        requires_approval=False,
    ),
    LicenceSeed(
        "TCIA-Restricted",
        "TCIA Restricted License",
        "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/",
        "Access to these collections needs a signed restricted licence agreement approved "
        "by the archive. Use the data for non-commercial research only, do not share it "
        "onwards, do not attempt to identify participants, and cite the collection.",
        commercial_use=False,
        requires_approval=True,
    ),
    LicenceSeed(
        "NCTN-Data-Archive",
        "NCTN Data Archive License",
        "https://nctn-data-archive.nci.nih.gov/",
        "Data from NCI's National Clinical Trials Network trials. Access needs an approved "
        "data use agreement; use it for the approved research only, do not share it "
        "onwards, do not attempt to identify participants, and cite the trial.",
        commercial_use=False,
        requires_approval=True,
    ),
)

POLICY_VERSION = "1"
DATA_USAGE_POLICY = (
    "By using data from this archive you agree: not to use it, alone or with other "
    "information, to identify or contact the people it came from; to cite each "
    "collection you use (its DOI) and this archive in every presentation or publication; "
    "to honour each collection's licence; and, if you mirror or re-serve the data, to "
    "carry this attribution and this policy to your own users."
)

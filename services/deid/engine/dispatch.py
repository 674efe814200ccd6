"""The walker: one pass over a dataset and its sequences at every depth, choosing each
attribute's action (Table E.1-1 compiled with the profile's options, a VR default for
attributes the table does not list, the private-tag rules for odd groups).
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .actions import _tag_str
from .iod import attribute_type, resolve
from .private import PrivateRules
from .rules import GENERIC_UID, PSEUDONYM


class Walker(PrivateRules):
    """One de-identification run over one dataset."""

    def dataset(self, ds: Dataset, prefix: str, parent: int | None) -> None:
        blocks_kept: set[tuple[int, int]] = set()
        creators: list[int] = []
        creator_names: dict[int, str] = {}
        for tag in list(ds.keys()):  # BaseTag: pydicom's own lookups skip Tag() conversion
            group = tag >> 16
            elem_no = tag & 0xFFFF
            if group & 1:
                if 0x0010 <= elem_no <= 0x00FF:
                    creators.append(tag)
                else:
                    self.private_element(ds, tag, prefix, blocks_kept, creator_names)
                continue
            path = prefix + _tag_str(tag)
            if elem_no == 0 or group in (0x0000, 0x0002):
                del ds[tag]  # group lengths, command and file meta elements
                self.note(path, tag, "removed")
                continue
            if (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and not group & 1:
                self.graphics(ds, tag, path)
                continue
            raw = ds.get_item(tag)
            vr = self.vr_of(tag, raw)
            action = self.c.actions.get(tag)
            if action is None:
                action = self.c.generic_action(vr)
                if action == "X" and tag in self.c.allowed_text:
                    action = "K"
            self.apply(ds, tag, vr, action, path, parent)
        for creator_tag in creators:
            group, block = creator_tag >> 16, creator_tag & 0xFF
            if (group, block) not in blocks_kept:
                del ds[creator_tag]
                self.note(prefix + _tag_str(creator_tag), creator_tag, "removed", "PrivateCreator")

    def apply(
        self, ds: Dataset, tag: int, vr: str, action: str, path: str, parent: int | None
    ) -> None:
        if "/" in action:
            action = resolve(action, attribute_type(self.sop_class, parent, tag))
        if action == "X":
            del ds[tag]
            self.note(path, tag, "removed")
        elif action == "K":
            self.keep(ds, tag, vr, path)
        elif action == "Z":
            self.empty(ds, tag, vr, path)
        elif action == "D":
            self.dummy(ds, tag, vr, path)
        elif action == "U":
            self.uids(ds, tag, vr, path)
        elif action == "C":
            self.clean(ds, tag, vr, path)
        elif action == PSEUDONYM:
            if parent is None:
                ds[tag] = DataElement(tag, vr, self.pseudonym)
                self.note(path, tag, "replaced")
            else:
                # A nested patient name/ID may be another patient's: never keep, never guess.
                self.apply(ds, tag, vr, "Z/D" if tag == 0x00100020 else "Z", path, parent)
        elif action == GENERIC_UID:
            if self.c.retain_uids or tag in self.c.class_uid_tags:
                self.note(path, tag, "kept")
            else:
                self.uids(ds, tag, vr, path)
        else:  # pragma: no cover - actions are validated at load
            raise AssertionError(f"unknown action {action}")

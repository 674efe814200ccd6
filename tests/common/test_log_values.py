"""pydicom's warnings quote the values they object to; our log lines never carry them."""

from __future__ import annotations

import logging
import warnings

from pydicom import config
from pydicom.valuerep import validate_value

from services.common.logs import hide_dicom_values


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_pydicom_warning_logs_the_vr_not_the_value() -> None:
    hide_dicom_values()
    kept = Kept()
    root = logging.getLogger()
    root.addHandler(kept)
    try:
        with warnings.catch_warnings(record=True) as shown:
            hide_dicom_values()
            validate_value("UI", "DOE^JOHN", config.WARN)
    finally:
        root.removeHandler(kept)
    assert kept.lines, "pydicom logged nothing"
    assert all("DOE^JOHN" not in line for line in kept.lines), kept.lines
    assert any("VR UI" in line and "'…'" in line for line in kept.lines), kept.lines
    assert all("DOE^JOHN" not in str(w.message) for w in shown)

"""Structured logs: one JSON object per line when IMARC_LOG_JSON is set."""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings
from datetime import UTC, datetime

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` for a log line: control characters escaped (``\\n``, ``\\x1b``), so that
    what a client sent (a request path, a name) cannot start a forged line or colour one."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


#: A quoted value in a library's message: pydicom quotes the element value it objects to
#: ("Invalid value for VR UI: '1.2.3...'", "... for VR PN: 'DOE^JOHN'").
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class NoValues(logging.Filter):
    """Replaces quoted values in pydicom's messages with ``'…'``: a log line carries element
    tags and VRs, never a value (it may be a patient's name or id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _QUOTED.sub("'…'", record.getMessage())
        record.args = None
        return True


def hide_dicom_values() -> None:
    """Install NoValues on pydicom's logger and keep its warnings (which repeat the same
    message) off stderr: in the services and in CPU worker processes alike."""
    logger = logging.getLogger("pydicom")
    if not any(isinstance(f, NoValues) for f in logger.filters):
        logger.addFilter(NoValues())
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("service", "event_id", "event_type", "collection"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    hide_dicom_values()
    for noisy in ("aiormq", "aio_pika", "httpx", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""What a platform started on this machine (`imarc up`, `imarc stack`) leaves in its data
directory for the `imarc` command: where it serves, beside its admin credentials.

`imarc up` keeps its data in ``var/`` and `make up` (`imarc stack`) in ``var/stack/``;
`imarc login` finds the credentials of the one answering at ``--url`` in either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SERVING = "serving.json"
CREDENTIALS = "admin-credentials.json"
#: Where `imarc up` and `imarc stack` keep their data by default (relative to the checkout).
DEFAULT_DATA_DIRS = (Path("var"), Path("var/stack"))


def record_serving(data_dir: Path, url: str) -> None:
    """Note in ``data_dir`` that the platform keeping its data there answers at ``url``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / SERVING).write_text(json.dumps({"url": url.rstrip("/")}) + "\n")


def _served_url(data_dir: Path) -> str | None:
    try:
        return str(json.loads((data_dir / SERVING).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def candidate_dirs(explicit: Path | None) -> list[Path]:
    """The data directories to look in: the one given, else ``IMARC_DATA_DIR`` and the
    defaults of `imarc up` and `imarc stack`."""
    if explicit is not None:
        return [explicit]
    dirs = [Path(os.environ["IMARC_DATA_DIR"])] if os.environ.get("IMARC_DATA_DIR") else []
    dirs += [d for d in DEFAULT_DATA_DIRS if d not in dirs]
    return dirs


def admin_credentials_for(url: str, dirs: list[Path]) -> Path | None:
    """The admin credentials file of the local platform answering at ``url``.

    A directory whose platform recorded that URL wins (the most recently started if
    several did); otherwise the only directory holding credentials, if it recorded no URL.
    """
    url = _same_host(url)
    held = [d for d in dirs if (d / CREDENTIALS).is_file()]
    serving = [d for d in held if _same_host(_served_url(d) or "") == url]
    if serving:
        newest = max(serving, key=lambda d: (d / SERVING).stat().st_mtime)
        return newest / CREDENTIALS
    if len(held) == 1 and _served_url(held[0]) is None:
        return held[0] / CREDENTIALS
    return None


def _same_host(url: str) -> str:
    return url.rstrip("/").replace("://localhost", "://127.0.0.1")

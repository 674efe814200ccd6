"""`imarc login` on the machine that runs the platform finds its admin credentials:
`imarc up` keeps them in var/, `make up` (`imarc stack`) in var/stack/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imarc.cli import app as cli
from imarc.local import record_serving
from imarc.runtime import Runtime, prepare_embedded
from services.common.settings import Settings
from tests import harness


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout's working directory; the CLI keeps its tokens under it too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("IMARC_TOKEN", raising=False)
    monkeypatch.delenv("IMARC_DATA_DIR", raising=False)
    return tmp_path


@pytest.fixture
def stack_url(checkout: Path) -> Iterator[str]:
    """What `make up` leaves: credentials and the serving URL in var/stack/, and a platform
    (its auth service is enough to log in) started with those credentials. An older
    `imarc up` left other credentials in var/."""
    prepare_embedded(Settings(data_dir=Path("var")))
    stack = prepare_embedded(Settings(data_dir=Path("var/stack")))
    settings = harness.make_settings(
        checkout / "auth-data",
        admin_username=stack.admin_username,
        admin_password=stack.admin_password,
    )
    with harness.serving(Runtime(settings, ["auth"]).app()) as url:
        record_serving(Path("var/stack"), url)
        yield url


def test_login_after_make_up_uses_the_stacks_credentials(stack_url: str) -> None:
    result = CliRunner().invoke(cli, ["--url", stack_url, "login"])
    assert result.exit_code == 0, result.output
    assert "var/stack/admin-credentials.json" in result.output
    assert f"logged in to {stack_url} as admin" in result.output
    saved = json.loads(Path("config/imarc/credentials.json").read_text())
    assert saved[stack_url]["access_token"]


def test_login_names_where_it_looked_when_no_credentials_serve_the_url(
    checkout: Path,
) -> None:
    prepare_embedded(Settings(data_dir=Path("var")))
    prepare_embedded(Settings(data_dir=Path("var/stack")))
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "login"])
    assert result.exit_code == 1
    assert "no admin credentials for http://127.0.0.1:9 in var/ or var/stack/" in result.output
    assert "--data-dir" in result.output and "Traceback" not in result.output

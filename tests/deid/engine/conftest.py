"""Fixtures for the de-identification engine tests (builders live in deid_factories)."""

from __future__ import annotations

import pytest
from deid_factories import Planted, phi_ct


@pytest.fixture
def planted() -> Planted:
    return phi_ct()

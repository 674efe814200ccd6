"""Typed settings, read from the environment (prefix ``IMARC_``).

Nothing here builds a client: engines, brokers and stores are made in each
service's bootstrap from these values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.contracts import SERVICES
from services.common.proxies import trusted_networks

DEFAULT_PORTS = {name: 8081 + i for i, name in enumerate(SERVICES)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMARC_", extra="ignore")

    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""

    database_url: str = ""
    bus_url: str = ""
    # Prefix of the exchange and queue names: lets several deployments share one broker.
    bus_prefix: str = ""
    store_url: str = ""
    store_fsync: bool = True

    secret: SecretStr = SecretStr("")
    uid_root: str = "2.25"

    auth_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['auth']}"
    revocation_refresh_seconds: float = 10.0
    jwt_issuer: str = "imarc"
    jwt_audience: str = "imarc"
    admin_username: str = ""
    admin_password: SecretStr = SecretStr("")

    site_name: str = "site-a"
    # a replica reads a replicated database; a mirror follows another site's feed
    # (services/catalog/mirror.py); both refuse submissions
    site_role: Literal["primary", "replica", "mirror"] = "primary"

    intake_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['intake']}"
    deid_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['deid']}"
    qc_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['qc']}"
    catalog_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['catalog']}"
    download_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['download']}"

    deid_workers: int = 0
    # The most bytes one submission may unpack to (a zip's members, multipart parts or a
    # single body): the guard against zip bombs and disk-filling uploads.
    intake_max_upload_bytes: int = 8 * 1024**3
    # The most bytes one submitted file may hold (or a zip member or deflated dataset
    # inflate to); one submission holds at most this, or 256 MiB, in memory at once.
    intake_max_file_bytes: int = 1024**3
    # A zip member or deflated dataset past 16 MiB may inflate to at most this many times
    # its compressed size: the mark of a compression bomb.
    intake_max_inflate_ratio: int = 100
    # Caps on the walk of a DICOM header: data elements in all, and nesting of sequences.
    intake_max_elements: int = 1_000_000
    intake_max_sequence_depth: int = 32
    # The DICOM C-STORE listener (`imarc up`, `imarc serve dicom`): its port, AE title and
    # whether this process runs it.
    dicom_enabled: bool = False
    dicom_port: int = 11112
    dicom_ae_title: str = "IMARC"
    bus_max_attempts: int = 5
    bus_retry_base_seconds: float = 0.5
    # Prometheus metrics are served on a port of their own, never on the public one;
    # 0 serves none. The address defaults to IMARC_HOST.
    metrics_port: int = 0
    metrics_host: str = ""
    # Origins (comma-separated, or *) whose browser pages may call the DICOMweb searches,
    # e.g. a viewer served from another host; empty allows none.
    dicomweb_cors_origins: str = ""
    # Proxies (comma-separated addresses or CIDR ranges) whose X-Forwarded-For is believed:
    # the gateway and the ingress in front of it. Empty: the socket's peer is the client.
    trusted_proxies: str = ""
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        trusted_networks(value)  # a typo fails at start, not on the first request
        return value

    def cpu_workers(self) -> int:
        """Size of the CPU worker pool (``IMARC_DEID_WORKERS``, else one per core)."""
        return self.deid_workers or os.cpu_count() or 1

    def service_url(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))

    def database_url_for(self, service: str) -> str:
        """The SQLAlchemy URL of one service's own database.

        Embedded mode gives each service its own SQLite file; a PostgreSQL URL is
        shared and each service keeps its tables in a schema of its own name.
        """
        if self.database_url:
            return self.database_url.replace("{service}", service)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'db' / f'{service}.sqlite'}"

    def resolved_store_url(self) -> str:
        return self.store_url or f"file://{self.data_dir.resolve() / 'objects'}"

    @property
    def embedded_bus(self) -> bool:
        return not self.bus_url

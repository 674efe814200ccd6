"""A RabbitMQ node of the test's own, on loopback, so that its broker can be stopped and
started without touching the shared one: its own name, ports, cookie, data directory and
epmd, started and stopped by PID (the recipe of the machine notes on a second node)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from imarc.stack import free_port

BIN = Path("/usr/lib/rabbitmq/bin")  # not /usr/sbin: those wrappers switch to the system node


def available() -> bool:
    return (BIN / "rabbitmq-server").exists() and shutil.which("epmd") is not None


@dataclass
class RabbitNode:
    home: Path
    name: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.name = self.name or f"faults{uuid.uuid4().hex[:6]}@localhost"
        self.port = self.port or free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        d = self.home
        (d / "home").mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq-env.conf").write_text("")  # keeps /etc/rabbitmq/rabbitmq-env.conf out
        cookie = d / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(uuid.uuid4().hex)
            cookie.chmod(0o600)
        (d / "enabled_plugins").write_text("[].")
        (d / "rabbitmq.conf").write_text("disk_free_limit.absolute = 50MB\n")
        return {
            **os.environ,
            "HOME": str(d / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [str(BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "server.out", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [str(BIN / "rabbitmq-server")], env=self.env(), stdout=log, stderr=log
        )
        self.ctl("wait", str(self.home / "pid"), "--timeout", "120", timeout=150)

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def shutdown(self) -> None:
        try:
            self.ctl("shutdown", timeout=60)
        except (subprocess.SubprocessError, OSError):
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        # the node's own epmd outlives it: stop that one only (its port is ours)
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True, timeout=30
        )

"""A local Redis Cluster for the tests: 3 masters without replicas, started once per test process
on free ports and stopped by PID at the end. Minimal on purpose: the failover and reshard tests
bring a cluster with replicas of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

MASTERS = 3


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    for tool in ("redis-server", "redis-cli"):
        if not shutil.which(tool):
            return f"{tool} not found: apt-get install redis-server redis-tools"
    return None


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports free with their cluster bus port (port + 10000) free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 55000 and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


class Cluster:
    def __init__(self, directory: Path):
        self.directory = directory
        self.ports = _free_ports(MASTERS)
        self.pids: list[int] = []

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            subprocess.run(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--dir", str(self.directory),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "yes",
                    "--pidfile", str(self.directory / f"{port}.pid"),
                    "--logfile", str(self.directory / f"{port}.log"),
                ],
                check=True,
            )  # fmt: skip
        for port in self.ports:
            pidfile = self.directory / f"{port}.pid"
            self._wait(lambda pidfile=pidfile: pidfile.exists() and pidfile.read_text().strip())
            self.pids.append(int(pidfile.read_text()))
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-yes"], check=True, capture_output=True)
        for port in self.ports:
            self._wait(lambda port=port: redis.Redis(port=port).cluster("info").get("cluster_state") == "ok")

    @staticmethod
    def _wait(ready, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                if ready():
                    return
            time.sleep(0.05)
        raise RuntimeError("the test cluster did not come up")

    def flush(self) -> None:
        for port in self.ports:
            with redis.Redis(port=port) as node:
                node.flushall()
                node.script_flush()

    def stop(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

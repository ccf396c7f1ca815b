"""Real server processes for tests: start one on a free port, wait until it is ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.security.keys import ApiKeyStore
from service.storage import create_database_engine, upgrade_schema

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(bundle: Path, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    """Variables of a test server; authentication is off unless ``extra`` turns it on."""
    return {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(bundle),
        "TRIAGE_DATA_DIR": str(data_dir),
        "TRIAGE_PORT": str(port),
        "TRIAGE_PROVIDER": "cpu",
        "TRIAGE_MODEL_VARIANT": "fp32",
        "TRIAGE_MAX_BATCH_WAIT_MS": "100",
        "TRIAGE_LOG_LEVEL": "WARNING",
        "TRIAGE_AUTH_ENABLED": "false",
        **extra,
    }


def create_keys(data_dir: Path, scopes_by_holder: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """API keys in the data folder's SQLite database, before a server opens it: holder -> key."""
    engine = create_database_engine(f"sqlite:///{data_dir / 'triage.db'}")
    upgrade_schema(engine)
    store = ApiKeyStore(engine)
    keys = {
        holder: store.create(holder, list(scopes)).secret
        for holder, scopes in scopes_by_holder.items()
    }
    engine.dispose()
    return keys


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"the server exited during start-up ({process.returncode})")
        time.sleep(0.2)
    raise AssertionError(f"the server was not ready within {timeout_s:.0f} s")


@contextmanager
def running_server(
    environment: Mapping[str, str], log: Path, port: int | None = None
) -> Iterator[RunningServer]:
    """``python -m service serve`` with ``environment``; its output goes to ``log``.

    Stopped with SIGTERM at the end unless the test already stopped or killed it.
    """
    port = port or int(environment["TRIAGE_PORT"])
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env={**environment, "TRIAGE_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_ready(server.url, process)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

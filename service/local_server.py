"""Running ``python -m service serve`` as a local process: a free port, API keys in a fresh
data folder, and waiting until the server is ready. Used by ``make soak`` and the tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from service.security.keys import ApiKeyStore
from service.storage import create_database_engine, upgrade_schema

__all__ = ["create_keys", "free_port", "wait_until_ready"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_keys(data_dir: Path, scopes_by_holder: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """API keys in the data folder's SQLite database, before a server opens it: holder -> key."""
    engine = create_database_engine(f"sqlite:///{data_dir / 'triage.db'}")
    try:
        upgrade_schema(engine)
        store = ApiKeyStore(engine)
        return {
            holder: store.create(holder, list(scopes)).secret
            for holder, scopes in scopes_by_holder.items()
        }
    finally:
        engine.dispose()


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], timeout_s: float = 90, poll_s: float = 0.2
) -> float:
    """Seconds until ``/ready`` answers 200; RuntimeError if the process exits or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during start-up ({process.returncode})")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s")

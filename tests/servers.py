"""Real server processes for tests: start one on a free port, wait until it is ready."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.local_server import create_keys, free_port, wait_until_ready

__all__ = [
    "ROOT",
    "RunningServer",
    "create_keys",
    "free_port",
    "running_server",
    "server_environment",
    "wait_until_ready",
]

ROOT = Path(__file__).resolve().parents[1]


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


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


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

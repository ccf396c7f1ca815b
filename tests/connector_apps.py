"""The service with connectors switched on, for the connector tests: mapping files with the
thresholds a test needs, and a test client running the real app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from litestar.testing import TestClient

from service.api.app import create_app
from service.routing import AgentInput
from service.settings import ConnectorSettings, KnowledgeSettings
from tests.test_api import settings_for, wait_ready

__all__ = ["EXAMPLES", "connector_client", "mapping_file", "route_everything_to", "wait_for"]

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "connectors"


def mapping_file(folder: Path, system: str, min_confidence: float, **changes: Any) -> Path:
    """The example mapping of ``system`` with every threshold at ``min_confidence``."""
    mapping = yaml.safe_load((EXAMPLES / f"{system}.yaml").read_text())
    mapping["min_confidence"] = {head: min_confidence for head in mapping["labels"]}
    mapping.update(changes)
    path = folder / f"{system}-mapping.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


@contextmanager
def connector_client(
    bundle: Path, data_dir: Path, connectors: ConnectorSettings, **overrides: Any
) -> Iterator[TestClient[Any]]:
    settings = settings_for(
        bundle,
        data_dir,
        knowledge=KnowledgeSettings(embedder="bundle"),
        connectors=connectors,
        **overrides,
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def route_everything_to(client: TestClient[Any], agent: str, queues: list[str]) -> None:
    """One agent who can take every queue: routing ranks them first for any ticket."""
    directory = client.app.state.routing.directory
    directory.put_agent(
        AgentInput(agent, {queue: 5 for queue in queues}, ["en", "de"], capacity=50)
    )


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("the condition did not come true in time")

"""Schemathesis against the running server's own OpenAPI schema: for every operation,
requests that fit the schema and requests that break it; no 5xx, and every answer matches
what the schema says (status, content type, body)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.servers import create_keys, free_port, running_server, server_environment

# Examples per operation and mode: enough to reach each field's edge cases, bounded for CI.
EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_server(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    folder = tmp_path_factory.mktemp("fuzz")
    key = create_keys(folder, {"fuzzer": ["admin"]})["fuzzer"]
    environment = server_environment(
        trained,
        free_port(),
        folder,
        TRIAGE_AUTH_ENABLED="true",
        TRIAGE_RATE_LIMIT_REQUESTS="0",
        TRIAGE_MAX_BATCH_WAIT_MS="0",
    )
    with running_server(environment, folder / "server.log") as server:
        yield server.url, key
        assert server.process.poll() is None, server.output()


def test_every_operation_answers_as_its_schema_says(fuzzed_server: tuple[str, str]) -> None:
    url, key = fuzzed_server
    schema = schemathesis.openapi.from_url(f"{url}/docs/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # the schema is valid
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    failures: dict[str, str] = {}

    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=60)

        try:
            fuzz()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs to break
        except Exception as exc:  # one operation's failure must not hide the others'
            failures[f"{operation.label} ({mode})"] = f"{type(exc).__name__}: {exc}"[:3000]

    assert len(operations) >= 10  # every route of the schema was reached
    assert failures == {}

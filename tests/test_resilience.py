"""The real server under faults: kill -9 during a bulk import, SIGTERM under load.

Both run ``python -m service serve`` as a process and talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
from sqlalchemy import create_engine, text

from tests.conftest import SAMPLE
from tests.servers import free_port, running_server, server_environment

KILL_ROUNDS = 3
ENTRIES_PER_CALL = 8


# Words of the sample tickets, so that each entry's text is distinct for the tiny model's
# tokenizer (numbers alone would map to nearly the same vectors).
WORDS = sorted({w for w in " ".join(pd.read_csv(SAMPLE)["body"]).split() if w.isalpha()})


def entry(number: int) -> dict[str, str]:
    words = random.Random(number).sample(WORDS, 12)
    return {
        "source_id": f"K-{number:05d}",
        "subject": " ".join(words[:3]),
        "body": " ".join(words[3:]),
        "resolution": f"Replaced toner cartridge {number}.",
    }


class Importer(threading.Thread):
    """Posts batches of new entries until the server goes away; remembers what was
    acknowledged (answered 200)."""

    def __init__(self, url: str, first: int) -> None:
        super().__init__(daemon=True)
        self.url, self.next = url, first
        self.acknowledged: list[str] = []
        self.refused: list[int] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while True:
                batch = [entry(self.next + i) for i in range(ENTRIES_PER_CALL)]
                try:
                    answer = client.post("/v1/knowledge", json={"entries": batch})
                except httpx.TransportError:
                    return
                if answer.status_code != 200:
                    self.refused.append(answer.status_code)
                    return
                self.acknowledged += [e["source_id"] for e in batch]
                self.next += ENTRIES_PER_CALL


def test_every_acknowledged_write_survives_kill_9(
    trained: Path, tmp_path: Path, database_url: str
) -> None:
    environment = server_environment(
        trained,
        free_port(),
        tmp_path,
        TRIAGE_DATABASE_URL=database_url,
        TRIAGE_KNOWLEDGE_SAVE_INTERVAL_S="0.3",  # saves are frequent, so kills hit them too
        TRIAGE_KNOWLEDGE_SYNC_INTERVAL_S="0.1",
    )
    acknowledged: list[str] = []
    chance = random.Random(7)
    for round_number in range(KILL_ROUNDS):
        with running_server(environment, tmp_path / "server.log") as server:
            importer = Importer(server.url, first=10_000 * round_number)
            importer.start()
            time.sleep(chance.uniform(0.8, 2.0))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            importer.join(timeout=30)
        assert importer.refused == [], server.output()
        assert importer.acknowledged, "nothing was acknowledged before the kill"
        acknowledged += importer.acknowledged

    with running_server(environment, tmp_path / "server.log") as server:
        statistics = httpx.get(f"{server.url}/v1/knowledge").json()
        probes = chance.sample(acknowledged, 10)
        found = [httpx.get(f"{server.url}/v1/knowledge/{source_id}") for source_id in probes]
        nearest = [
            httpx.post(
                f"{server.url}/v1/suggest",
                json={"subject": entry(number)["subject"], "body": entry(number)["body"], "k": 1},
            ).json()["suggestions"][0]["source_id"]
            for number in (int(source_id[2:]) for source_id in probes)
        ]

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        stored = set(connection.scalars(text("SELECT source_id FROM knowledge_entries")))
    engine.dispose()
    assert set(acknowledged) <= stored
    assert statistics["index"]["vectors"] == statistics["entries"] == len(stored)
    assert [answer.status_code for answer in found] == [200] * len(probes)
    assert nearest == probes  # each entry's own text finds it: index and rows agree


def test_sigterm_answers_every_request_in_flight_and_exits_0(
    trained: Path, tmp_path: Path
) -> None:
    # Tickets wait up to a second for company, so all of them are in flight at SIGTERM.
    environment = server_environment(
        trained,
        free_port(),
        tmp_path,
        TRIAGE_MAX_BATCH_WAIT_MS="1000",
        TRIAGE_MAX_BATCH_SIZE="64",
        TRIAGE_LOG_LEVEL="INFO",
    )
    tickets = [{"body": f"Ticket {i}: the VPN drops every {i} minutes."} for i in range(48)]

    async def load(url: str, stop: Callable[[], None]) -> tuple[list[int], str]:
        limits = httpx.Limits(max_connections=len(tickets))
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            sent = [asyncio.create_task(client.post("/v1/classify", json=t)) for t in tickets]
            await asyncio.sleep(0.4)
            stop()
            await asyncio.sleep(0.2)
            try:
                late = await client.post("/v1/classify", json=tickets[0], timeout=5)
                after = f"answered {late.status_code}"
            except httpx.TransportError as exc:
                after = type(exc).__name__
            answers = await asyncio.gather(*sent)
        return [answer.status_code for answer in answers], after

    with running_server(environment, tmp_path / "server.log") as server:
        statuses, after_sigterm = asyncio.run(
            load(server.url, lambda: server.process.send_signal(signal.SIGTERM))
        )
        exit_code = server.process.wait(timeout=60)

    assert statuses == [200] * len(tickets), server.output()
    assert after_sigterm == "ConnectError"  # no longer accepting
    assert exit_code == 0, server.output()
    assert "Application shutdown complete" in server.output()


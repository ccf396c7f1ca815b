"""Routing: the policies, the directory of teams and agents, the API and the simulation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.errors import InputError
from service.routing import (
    AgentInput,
    AgentState,
    RoutingDirectory,
    RoutingTicket,
    make_policy,
    rank_teams,
)
from service.routing.directory import AgentFullError
from service.routing.policies import TeamState
from service.routing.simulation import load_pool
from service.routing.simulation import main as simulate_main
from service.storage import create_database_engine, upgrade_schema
from tests.conftest import SAMPLE
from tests.test_api import settings_for, wait_ready

ROOT = Path(__file__).resolve().parents[1]
BILLING = RoutingTicket({"Billing and Payments": 0.9, "IT Support": 0.1}, "medium", "de")


def agent(name: str, skills: dict[str, int], languages: list[str], **state: Any) -> AgentState:
    return AgentState(name, skills, languages, state.pop("capacity", 5), **state)


def test_skills_policy_prefers_the_skilled_agent_who_speaks_the_language() -> None:
    agents = [
        agent("it-de", {"IT Support": 5}, ["de"]),
        agent("billing-en", {"Billing and Payments": 5}, ["en"]),
        agent("billing-de", {"Billing and Payments": 4}, ["de"]),
    ]

    ranked = make_policy("skills").rank(BILLING, agents)

    assert [c.agent for c in ranked] == ["billing-de", "billing-en", "it-de"]
    assert ranked[0].reason == (
        "queue Billing and Payments 0.90 (level 4/5), speaks de, 0 of 5 slots used"
    )


def test_high_priority_goes_to_the_most_experienced_free_agent() -> None:
    agents = [
        agent("junior", {"Billing and Payments": 3}, ["de"]),
        agent("expert", {"Billing and Payments": 5}, ["de"], load=3),
    ]
    urgent = RoutingTicket(BILLING.queues, "high", "de")

    # A junior with free slots beats a busy expert on a normal ticket, not on an urgent one.
    normal_first = make_policy("skills", load_weight=1.0).rank(BILLING, agents)[0].agent
    urgent_first = make_policy("skills", load_weight=1.0).rank(urgent, agents)[0].agent

    assert normal_first == "junior" and urgent_first == "expert"


def test_full_or_away_agents_get_nothing() -> None:
    agents = [
        agent("full", {"Billing and Payments": 5}, ["de"], capacity=2, load=2),
        agent("away", {"Billing and Payments": 5}, ["de"], available=False),
    ]

    for policy in ("skills", "round-robin", "least-loaded"):
        assert make_policy(policy).rank(BILLING, agents) == []


def test_history_favours_the_faster_agent() -> None:
    agents = [
        agent("slow", {"Billing and Payments": 4}, ["de"], speed={"Billing and Payments": 0.8}),
        agent("fast", {"Billing and Payments": 4}, ["de"], speed={"Billing and Payments": 1.2}),
    ]

    ranked = make_policy("skills").rank(BILLING, agents)

    assert ranked[0].agent == "fast" and "1.20× the median speed" in ranked[0].reason


def test_round_robin_takes_turns_and_least_loaded_takes_the_emptiest() -> None:
    agents = [agent(n, {}, ["en"], load=load) for n, load in (("a", 2), ("b", 0), ("c", 1))]
    turns = make_policy("round-robin")

    firsts = [turns.rank(BILLING, agents)[0].agent for _ in range(4)]
    emptiest = make_policy("least-loaded").rank(BILLING, agents)[0].agent

    assert firsts == ["a", "b", "c", "a"] and emptiest == "b"


def test_teams_are_ranked_by_the_probability_of_their_queues() -> None:
    teams = [TeamState("it", ["IT Support"]), TeamState("billing", ["Billing and Payments"])]

    ranked = rank_teams(BILLING, teams)

    assert [t.agent for t in ranked] == ["billing", "it"]
    assert ranked[0].reason == "handles Billing and Payments 0.90"


def test_an_unknown_policy_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="expected one of skills, round-robin, least-loaded"):
        make_policy("random")


# The directory, on SQLite and PostgreSQL.


@pytest.fixture
def directory(database_url: str) -> Iterator[RoutingDirectory]:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    directory = RoutingDirectory(engine)
    directory.put_team("billing", ["Billing and Payments"])
    directory.put_agent(
        AgentInput("sophie", {"Billing and Payments": 5}, ["de"], 2, team="billing")
    )
    yield directory
    engine.dispose()


def test_assigning_and_closing_keep_the_load(directory: RoutingDirectory) -> None:
    first = directory.assign("sophie", ticket_id="T-1", queue="Billing and Payments")
    directory.assign("sophie", ticket_id="T-2")
    loaded = directory.agent("sophie").load
    directory.close(first.id)
    directory.close(first.id)  # closing twice changes nothing

    assert loaded == 2
    assert directory.agent("sophie").load == 1
    assert [a.ticket_id for a in directory.open_assignments("sophie")] == ["T-2"]


def test_routing_cannot_overbook_but_a_person_can(directory: RoutingDirectory) -> None:
    directory.assign("sophie", within_capacity=True)
    directory.assign("sophie", within_capacity=True)

    with pytest.raises(AgentFullError, match="no free slot"):
        directory.assign("sophie", within_capacity=True)
    directory.assign("sophie")  # by hand: a lead may overbook

    assert directory.agent("sophie").load == 3


def test_replacing_a_profile_keeps_the_load(directory: RoutingDirectory) -> None:
    directory.assign("sophie")
    directory.put_agent(AgentInput("sophie", {"Sales and Pre-Sales": 3}, ["de", "fr"], 4))

    state = directory.agent("sophie")

    assert state.load == 1 and state.capacity == 4 and state.skills == {"Sales and Pre-Sales": 3}


def test_speeds_come_from_closed_assignments(directory: RoutingDirectory) -> None:
    directory.put_agent(AgentInput("oliver", {"Billing and Payments": 4}, ["en"]))
    for name in ("sophie", "oliver"):
        for _ in range(3):
            directory.close(directory.assign(name, queue="Billing and Payments").id)

    speeds = directory.speeds()

    assert set(speeds) == {"sophie", "oliver"}
    assert all(0.8 <= s["Billing and Payments"] <= 1.25 for s in speeds.values())


def test_bad_profiles_are_refused_with_what_was_expected(directory: RoutingDirectory) -> None:
    with pytest.raises(InputError, match=r"expected levels 1\.\.5"):
        directory.put_agent(AgentInput("x", {"IT Support": 9}, ["en"]))
    with pytest.raises(InputError, match="expected an existing team"):
        directory.put_agent(AgentInput("x", {"IT Support": 3}, ["en"], team="nowhere"))


# The API.


@pytest.fixture
def client(trained: Path, tmp_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings_for(trained, tmp_path))) as test_client:
        wait_ready(test_client)
        labels = test_client.get("/v1/models").json()["heads"]["queue"]
        for team, queues in (("first", labels[:5]), ("second", labels[5:])):
            assert test_client.put(f"/v1/teams/{team}", json={"queues": queues}).status_code == 200
        profiles = {
            "anna": {"skills": dict.fromkeys(labels, 3), "languages": ["de"], "team": "first"},
            "james": {"skills": dict.fromkeys(labels, 3), "languages": ["en"], "capacity": 1},
        }
        for name, profile in profiles.items():
            assert test_client.put(f"/v1/agents/{name}", json=profile).status_code == 200
        yield test_client


def test_route_ranks_agents_with_reasons_and_assigns(client: TestClient[Any]) -> None:
    ticket = {"body": "Mein Laptop startet nicht mehr, bitte helfen Sie mir.", "assign": True}

    answer = client.post("/v1/route", json=ticket)

    assert answer.status_code == 200, answer.text
    routing = answer.json()["routing"]
    assert routing["policy"] == "skills"
    assert routing["agents"][0]["name"] == "anna" and "speaks de" in routing["agents"][0]["reason"]
    assert routing["assignment"]["agent"] == "anna"
    assert (
        routing["assignment"]["prediction_id"] == answer.json()["classification"]["prediction_id"]
    )
    assert client.get("/v1/agents/anna").json()["load"] == 1


def test_a_full_agent_is_skipped_and_closing_frees_the_slot(client: TestClient[Any]) -> None:
    english = {"body": "My laptop does not start any more, please help.", "assign": True}
    first = client.post("/v1/route", json=english).json()["routing"]
    second = client.post("/v1/route", json=english).json()["routing"]
    closed = client.post(f"/v1/assignments/{first['assignment']['id']}/close")
    third = client.post("/v1/route", json=english).json()["routing"]

    assert first["agents"][0]["name"] == "james"
    assert second["agents"][0]["name"] == "anna"  # james has no free slot
    assert closed.status_code == 200 and closed.json()["closed_at"]
    assert third["agents"][0]["name"] == "james"


def test_classify_can_include_routing(client: TestClient[Any]) -> None:
    answer = client.post(
        "/v1/classify", json={"body": "Die Rechnung ist doppelt abgebucht.", "include": ["routing"]}
    ).json()

    assert answer["routing"]["agents"][0]["name"] == "anna"
    assert answer["routing"]["assignment"] is None
    assert answer["routing"]["teams"]


def test_an_away_agent_is_not_proposed(client: TestClient[Any]) -> None:
    client.put("/v1/agents/anna/availability", json={"available": False})

    answer = client.post("/v1/route", json={"body": "Mein Laptop startet nicht."}).json()

    assert [a["name"] for a in answer["routing"]["agents"]] == ["james"]


def test_unknown_agents_and_assignments_are_404(client: TestClient[Any]) -> None:
    assert client.get("/v1/agents/nobody").status_code == 404
    assert client.post("/v1/assignments", json={"agent": "nobody"}).status_code == 404
    assert client.post("/v1/assignments/999/close").status_code == 404


# The simulation.


def test_the_simulation_reports_every_policy_and_the_default_wins_in_language(
    trained: Path, tmp_path: Path
) -> None:
    output = tmp_path / "routing"

    code = simulate_main(
        [
            "--model-dir",
            str(trained),
            "--tickets",
            str(SAMPLE),
            "--pool",
            str(ROOT / "data/routing/agents.yaml"),
            "--output",
            str(output),
            "--rate",
            "30",
        ]
    )

    assert code == 0
    report = json.loads((output / "routing.json").read_text())
    results = {r["policy"]: r for r in report["results"]}
    assert set(results) == {"skills", "round-robin", "least-loaded"}
    assert all(r["tickets"] == report["tickets"] == 300 for r in results.values())
    assert results["skills"]["in_language_share"] > results["round-robin"]["in_language_share"]
    assert results["skills"]["in_language_share"] > results["least-loaded"]["in_language_share"]
    assert (output / "routing.png").stat().st_size > 10_000


def test_the_example_pool_loads() -> None:
    pool = load_pool(ROOT / "data/routing/agents.yaml")

    assert len(pool) == 15 and all(a.capacity >= 1 and a.skills for a in pool)


def test_routing_asked_for_twice_is_done_once(client: TestClient[Any]) -> None:
    ticket = {"body": "My laptop does not start.", "include": ["routing"], "policy": "round-robin"}

    first = client.post("/v1/route", json=ticket).json()
    second = client.post("/v1/route", json=ticket).json()

    assert "routing" not in first["classification"]
    # One turn per routed ticket: the two agents come first in turn.
    assert first["routing"]["agents"][0]["name"] != second["routing"]["agents"][0]["name"]

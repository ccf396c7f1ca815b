"""Pool files: teams and agents in YAML (``data/routing/agents.yaml``), for ``python -m
service routing import`` and the routing simulation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from service.errors import InputError
from service.routing.directory import AgentInput
from service.routing.policies import AgentState, TeamState

__all__ = ["Pool", "PoolError", "read_pool"]


class PoolError(ValueError):
    """A pool file cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class Pool:
    teams: list[TeamState]
    agents: list[AgentInput]

    def states(self) -> list[AgentState]:
        """The agents as the policies see them, with no load."""
        return [
            AgentState(
                a.name, dict(a.skills), list(a.languages), a.capacity, 0, a.available, a.team
            )
            for a in self.agents
        ]


def read_pool(path: Path) -> Pool:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PoolError(f"{path}: {exc}") from exc
    teams = [
        TeamState(str(name), [str(q) for q in (team or {}).get("queues", [])])
        for name, team in (raw.get("teams") or {}).items()
    ]
    agents = []
    for position, item in enumerate(raw.get("agents") or []):
        try:
            agent = AgentInput(
                name=str(item["name"]),
                skills={str(q): int(level) for q, level in item["skills"].items()},
                languages=[str(language) for language in item["languages"]],
                capacity=int(item.get("capacity", 5)),
                available=bool(item.get("available", True)),
                team=item.get("team"),
            )
            agent.check()
        except (KeyError, TypeError, ValueError, AttributeError, InputError) as exc:
            raise PoolError(
                f"{path}: agents[{position}]: expected name, skills (queue: level 1..5), "
                f"languages and optionally capacity, available, team; found {exc}"
            ) from exc
        agents.append(agent)
    return Pool(teams, agents)

"""Routing simulation: replay a ticket stream against a pool of agents under each policy.

python -m service.routing.simulation --model-dir onnx_models/ticket-triage \\
    --tickets tickets.csv --pool data/routing/agents.yaml --output runs/routing

The bundle classifies every ticket once; each policy then sees the same arrivals, the same
predictions and the same base work time per ticket, so only the routing differs. Tickets
arrive at the times of a ``created_at`` column, or as a Poisson stream at ``--rate`` per
hour. A routed ticket occupies one of the agent's slots for its work time: the ticket's base
time (log-normal, longer for higher priority) times a factor for the agent's skill in the
ticket's *true* queue (1.45 at level 1 down to 0.85 at level 5) and 1.5 when the agent does
not speak the ticket's language. An agent without any skill in the true queue spends
``--triage-minutes`` finding that out and hands the ticket back, moved to its true queue: a
reassignment, and the ticket is routed again, on that queue, among the agents who have not
had it. Tickets no one can take wait
in arrival order until a slot frees. The report compares mean and p90 time to resolution
(arrival to done, waiting included), reassignments, load balance (coefficient of
variation of the agents' busy time) and the share of tickets solved in the customer's
language.

Synthetic ticket sets spread tickets evenly over the queues; real intake does not. With
``--queue-shares-from`` (the GreatLearning ITSM export, say), tickets are drawn so that the
queues carry the shares of a real export's assignment groups, largest first: in that data
one group takes 46 % of the tickets and the next 8 %.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from service.columns import ColumnMapping
from service.files import read_rows, write_json
from service.inference.bundle import ModelBundle, TriageRuntime
from service.routing.policies import POLICIES, AgentState, RoutingTicket, make_policy
from service.routing.pool import read_pool
from service.text import detect_language, ticket_text

__all__ = ["SimulatedTicket", "load_pool", "main", "simulate"]

logger = logging.getLogger("service.routing.simulation")

BASE_MINUTES = {"high": 50.0, "medium": 35.0, "low": 25.0}
LANGUAGE_FACTOR = 1.5


@dataclass(frozen=True)
class SimulatedTicket:
    arrival: float  # minutes from the start
    true_queue: str
    language: str
    priority: str
    base_minutes: float
    predicted: RoutingTicket


@dataclass
class _Outcome:
    resolution_minutes: float
    reassignments: int
    in_language: bool


@dataclass
class _Agent:
    state: AgentState
    busy_minutes: float = 0.0
    handled: int = 0


@dataclass(order=True)
class _Event:
    time: float
    order: int
    kind: str = field(compare=False)  # "arrive" or "done"
    ticket: int = field(compare=False)
    agent: str | None = field(compare=False, default=None)


def skill_factor(level: int) -> float:
    return 1.6 - 0.15 * level


def load_pool(path: Path) -> list[AgentState]:
    return read_pool(path).states()


def simulate(
    tickets: Sequence[SimulatedTicket],
    pool: Sequence[AgentState],
    policy_name: str,
    triage_minutes: float = 10.0,
) -> dict[str, Any]:
    policy = make_policy(policy_name)
    agents = {a.name: _Agent(replace(a, load=0)) for a in pool}
    events = [_Event(t.arrival, i, "arrive", i) for i, t in enumerate(tickets)]
    heapq.heapify(events)
    order = len(events)
    tried: dict[int, set[str]] = {i: set() for i in range(len(tickets))}
    outcomes: dict[int, _Outcome] = {}
    reassignments = dict.fromkeys(range(len(tickets)), 0)
    waiting: list[int] = []
    # What the policy routes on: the prediction, until an agent hands the ticket back and
    # moves it to its true queue (as agents do in the ticket system).
    routing = [t.predicted for t in tickets]

    def place(index: int, now: float) -> bool:
        nonlocal order
        ticket = tickets[index]
        candidates = [
            a.state
            for name, a in agents.items()
            if name not in tried[index] or len(tried[index]) == len(agents)
        ]
        ranked = policy.rank(routing[index], candidates)
        if not ranked:
            return False
        agent = agents[ranked[0].agent]
        agent.state.load += 1
        tried[index].add(agent.state.name)
        level = agent.state.skills.get(ticket.true_queue, 0)
        if level == 0:
            minutes, kind = triage_minutes, "handback"
        else:
            minutes = ticket.base_minutes * skill_factor(level)
            if ticket.language not in agent.state.languages:
                minutes *= LANGUAGE_FACTOR
            kind = "done"
        agent.busy_minutes += minutes
        order += 1
        heapq.heappush(events, _Event(now + minutes, order, kind, index, agent.state.name))
        return True

    while events:
        event = heapq.heappop(events)
        if event.kind == "arrive":
            if not place(event.ticket, event.time):
                waiting.append(event.ticket)
            continue
        agent = agents[event.agent or ""]
        agent.state.load -= 1
        if event.kind == "handback":
            reassignments[event.ticket] += 1
            ticket = tickets[event.ticket]
            routing[event.ticket] = replace(routing[event.ticket], queues={ticket.true_queue: 1.0})
            if not place(event.ticket, event.time):
                waiting.append(event.ticket)
        else:
            agent.handled += 1
            ticket = tickets[event.ticket]
            outcomes[event.ticket] = _Outcome(
                event.time - ticket.arrival,
                reassignments[event.ticket],
                ticket.language in agent.state.languages,
            )
        # A slot is free: the longest-waiting tickets that someone can take go first.
        still_waiting = []
        for index in waiting:
            if not place(index, event.time):
                still_waiting.append(index)
        waiting = still_waiting

    times = np.array([o.resolution_minutes for o in outcomes.values()])
    busy = np.array([a.busy_minutes for a in agents.values()])
    return {
        "policy": policy_name,
        "tickets": len(outcomes),
        "mean_resolution_minutes": round(float(times.mean()), 1),
        "p90_resolution_minutes": round(float(np.percentile(times, 90)), 1),
        "reassignments": int(sum(o.reassignments for o in outcomes.values())),
        "reassigned_share": round(
            float(np.mean([o.reassignments > 0 for o in outcomes.values()])), 4
        ),
        "in_language_share": round(float(np.mean([o.in_language for o in outcomes.values()])), 4),
        "busy_time_cv": round(float(busy.std() / busy.mean()) if busy.mean() else 0.0, 3),
        "handled_per_agent": {name: a.handled for name, a in agents.items()},
        "resolution_minutes": times.tolist(),
    }


def prepare_tickets(
    rows: Sequence[dict[str, Any]],
    bundle: ModelBundle,
    rate_per_hour: float,
    seed: int,
    provider: str = "cpu",
) -> list[SimulatedTicket]:
    """Classify every row with the bundle and give it an arrival time and a base work time."""
    from tqdm.auto import tqdm

    chance = np.random.default_rng(seed)
    runtime = TriageRuntime(bundle, "fp32", provider, None)
    texts = [
        ticket_text(str(r.get("subject") or ""), str(r["body"]), bundle.text_prefix) for r in rows
    ]
    queue_labels, priority_labels = bundle.heads["queue"], bundle.heads.get("priority", [])
    predicted: list[RoutingTicket] = []
    for start in tqdm(range(0, len(texts), 64), desc="classifying", unit="batch"):
        chunk = texts[start : start + 64]
        probabilities = runtime.probabilities(runtime.run(chunk).logits)
        for i, text in enumerate(chunk):
            queues = {
                q: float(p) for q, p in zip(queue_labels, probabilities["queue"][i], strict=True)
            }
            priority = (
                priority_labels[int(probabilities["priority"][i].argmax())]
                if priority_labels
                else None
            )
            language = detect_language(text[len(bundle.text_prefix) :])[0]
            predicted.append(RoutingTicket(queues, priority, language))

    gaps = chance.exponential(60.0 / rate_per_hour, size=len(rows))
    arrivals = np.cumsum(gaps)
    tickets = []
    for row, arrival, guess in zip(rows, arrivals, predicted, strict=True):
        priority = str(row.get("priority") or "medium").lower()
        base = BASE_MINUTES.get(priority, BASE_MINUTES["medium"])
        # Log-normal with median ``base`` and a long right tail, as real work times are.
        minutes = float(base * math.exp(chance.normal(0.0, 0.5)))
        language = str(row.get("language") or guess.language)
        tickets.append(
            SimulatedTicket(float(arrival), str(row["queue"]), language, priority, minutes, guess)
        )
    return tickets


def skewed_sample(
    rows: Sequence[dict[str, Any]], shares: Sequence[float], size: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """``size`` rows drawn (with replacement) so that the queues' shares follow ``shares``:
    the largest share goes to the queue most frequent in ``rows`` (ties by name), and so on."""
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_queue.setdefault(str(row["queue"]), []).append(row)
    ranked = sorted(by_queue, key=lambda q: (-len(by_queue[q]), q))
    top = np.asarray(sorted(shares, reverse=True)[: len(ranked)], dtype=float)
    top = top / top.sum()
    chance = np.random.default_rng(seed)
    picks = chance.choice(len(top), size=size, p=top)
    sample = [by_queue[ranked[i]][chance.integers(len(by_queue[ranked[i]]))] for i in picks]
    return sample, {ranked[i]: round(float(share), 4) for i, share in enumerate(top)}


def real_assignment_shares(path: Path, column: str) -> list[float]:
    """Shares of the assignment groups in a real ticket export, largest first."""
    rows = read_rows(path)
    if not rows or column not in rows[0]:
        raise SystemExit(
            f"error: --queue-shares-from {path}: expected a column {column!r}, "
            f"found {list(rows[0]) if rows else 'no rows'}"
        )
    counts = Counter(str(row[column]) for row in rows if row.get(column))
    total = sum(counts.values())
    return [n / total for _, n in counts.most_common()]


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["policy"] for r in results]
    colours = ["tab:green", "tab:blue", "tab:orange"][: len(names)]
    figure, axes = plt.subplots(1, 4, figsize=(15, 4))
    panels = [
        ("mean_resolution_minutes", "mean time to resolution (min)"),
        ("p90_resolution_minutes", "p90 time to resolution (min)"),
        ("reassigned_share", "share of tickets reassigned"),
        ("in_language_share", "share solved in customer's language"),
    ]
    for axis, (key, title) in zip(axes, panels, strict=True):
        values = [r[key] for r in results]
        axis.bar(names, values, color=colours)
        axis.set_title(title, fontsize=10)
        for x, value in enumerate(values):
            axis.text(x, value, f"{value:g}", ha="center", va="bottom", fontsize=9)
        axis.tick_params(axis="x", labelsize=9)
    figure.suptitle(
        f"routing simulation: {results[0]['tickets']} tickets, same arrivals per policy"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Routing simulation",
        "",
        f"{report['tickets']} tickets from {', '.join(report['sources'])}, arriving at "
        f"{report['rate_per_hour']:g} per hour (Poisson, seed {report['seed']}), against "
        f"{report['agents']} agents with {report['slots']} slots from `{report['pool']}`; "
        f"predictions by `{report['model']}`. Offered load: {report['utilisation']:.0%} of "
        "the pool's slots at skilled speed.",
        "",
    ]
    if report.get("queue_shares"):
        shares = ", ".join(f"{q} {v:.1%}" for q, v in report["queue_shares"].items())
        lines += [
            f"Queues carry the shares of the assignment groups in `{report['queue_shares_from']}`"
            f" (largest first; tickets drawn with replacement): {shares}.",
            "",
        ]
    lines += [
        "| policy | mean TTR (min) | p90 TTR (min) | reassignments | reassigned | "
        "in customer's language | busy-time CV |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['policy']} | {r['mean_resolution_minutes']} | {r['p90_resolution_minutes']} | "
            f"{r['reassignments']} | {r['reassigned_share']:.1%} | {r['in_language_share']:.1%} | "
            f"{r['busy_time_cv']} |"
        )
    lines += ["", "![policies compared](routing.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.routing.simulation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=Path("onnx_models/ticket-triage"))
    parser.add_argument(
        "--tickets",
        type=Path,
        nargs="+",
        required=True,
        help="CSV/JSON(L)/Parquet with body, queue, language, priority",
    )
    parser.add_argument("--pool", type=Path, default=Path("data/routing/agents.yaml"))
    parser.add_argument("--output", type=Path, default=Path("runs/routing"))
    parser.add_argument("--limit", type=int, default=2000, help="tickets to replay (default 2000)")
    parser.add_argument("--rate", type=float, default=60.0, help="arrivals per hour")
    parser.add_argument("--triage-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument(
        "--queue-shares-from",
        type=Path,
        help="a real export with assignment groups (e.g. the GreatLearning ITSM tickets): "
        "--limit tickets are drawn so that the queues carry its groups' shares, largest first",
    )
    parser.add_argument("--share-column", default="Assignment group")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    bundle = ModelBundle.load(args.model_dir)
    mapping = ColumnMapping.default()
    rows = []
    for source in args.tickets:
        raw = read_rows(source)
        columns = mapping.resolve(list(raw[0])) if raw else {}
        for row in raw:
            ticket = {name: row.get(column) for name, column in columns.items()}
            if ticket.get("body") and ticket.get("queue") in bundle.heads["queue"]:
                rows.append(ticket)
    if not rows:
        parser.error("--tickets: expected rows with a body and a queue the model knows, found none")
    queue_shares = None
    if args.queue_shares_from:
        shares = real_assignment_shares(args.queue_shares_from, args.share_column)
        rows, queue_shares = skewed_sample(rows, shares, args.limit, args.seed)
    else:
        chance = np.random.default_rng(args.seed)
        rows = [rows[i] for i in sorted(chance.permutation(len(rows))[: args.limit])]
    pool = load_pool(args.pool)

    tickets = prepare_tickets(rows, bundle, args.rate, args.seed)
    results = [simulate(tickets, pool, name, args.triage_minutes) for name in args.policies]
    slots = sum(a.capacity for a in pool)
    mean_work = float(np.mean([t.base_minutes for t in tickets]))
    report = {
        "model": f"{bundle.name} {bundle.version}",
        "sources": [str(s) for s in args.tickets],
        "pool": str(args.pool),
        "agents": len(pool),
        "slots": slots,
        "tickets": len(tickets),
        "rate_per_hour": args.rate,
        "seed": args.seed,
        "utilisation": args.rate / 60 * mean_work / slots,
        "queue_shares": queue_shares,
        "queue_shares_from": str(args.queue_shares_from) if args.queue_shares_from else None,
        "results": [{k: v for k, v in r.items() if k != "resolution_minutes"} for r in results],
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_json(args.output / "routing.json", report)
    plot(results, args.output / "routing.png")
    (args.output / "routing.md").write_text(markdown(report), encoding="utf-8")
    for r in results:
        logger.info(
            "%s: mean %.1f min, p90 %.1f min, reassigned %.1f%%, in language %.1f%%",
            r["policy"],
            r["mean_resolution_minutes"],
            r["p90_resolution_minutes"],
            100 * r["reassigned_share"],
            100 * r["in_language_share"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

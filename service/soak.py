"""Soak test: the real server driven at a steady rate for a long time, then a report.

python -m service.soak --duration 600 --rate 10 --output runs/soak

It starts ``python -m service serve`` on the bundle with a data folder of its own,
authentication on and two API keys, and sends requests at a fixed rate whatever the
answers (an open loop, as real traffic does): mostly good ones (classify, batch classify,
suggest, knowledge writes) and a share of bad ones (malformed JSON, no key, wrong scope,
oversized, blank or overlong text), each with the status it must get. Knowledge writes
update a fixed pool of entries, so the knowledge base does not grow and memory can be
judged. Every second the server's resident memory is sampled. The report (JSON,
Markdown and a PNG) gives errors (any unexpected status, 5xx or failed connection),
latency percentiles per kind and per time window, and memory over time with a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.files import read_rows, write_json
from service.local_server import create_keys, free_port, wait_until_ready

__all__ = ["SoakConfig", "main", "run_soak"]

logger = logging.getLogger("service.soak")

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "tickets.csv"
WINDOW_S = 10.0
WRITE_POOL = 50
# Memory counts as flat when the fitted trend over the measured part (after warm-up)
# stays under this share of the mean, or under FLAT_MIB, whichever is larger.
FLAT_SHARE, FLAT_MIB = 0.03, 16.0
WARM_UP_SHARE = 0.2


@dataclass(frozen=True)
class SoakConfig:
    model_dir: Path
    output: Path
    duration_s: float = 600.0
    rate: float = 10.0
    seed: int = 0
    max_in_flight: int = 256


@dataclass(frozen=True)
class Kind:
    """One sort of request: how to make it, which statuses are right, and how often."""

    name: str
    weight: float
    expected: frozenset[int]
    good: bool
    build: Callable[[random.Random], dict[str, Any]]


@dataclass
class Outcome:
    kind: str
    sent_at: float  # seconds since the start
    latency_ms: float
    status: int | None  # None: no answer (connection failed, timed out)
    expected: bool


@dataclass
class Keys:
    writer: str
    reader: str


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)


def _tickets() -> list[dict[str, str]]:
    rows = read_rows(SAMPLE)
    return [
        {"subject": str(row.get("subject") or ""), "body": str(row["body"])}
        for row in rows
        if str(row.get("body") or "").strip()
    ]


def request_kinds(keys: Keys, tickets: list[dict[str, str]]) -> list[Kind]:
    writer = {"Authorization": f"Bearer {keys.writer}"}
    reader = {"Authorization": f"Bearer {keys.reader}"}

    def ticket(chance: random.Random) -> dict[str, str]:
        return chance.choice(tickets)

    def entry(chance: random.Random) -> dict[str, Any]:
        number = chance.randrange(WRITE_POOL)
        source = tickets[number % len(tickets)]
        return {
            **source,
            "source_id": f"SOAK-{number}",
            "resolution": f"Resolution {chance.randrange(1000)}",
        }

    def call(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        return {"method": method, "url": path, "headers": headers, **kwargs}

    ok = frozenset({200})
    return [
        Kind(
            "classify", 50, ok, True, lambda c: call("POST", "/v1/classify", reader, json=ticket(c))
        ),
        Kind(
            "classify batch of 4",
            8,
            ok,
            True,
            lambda c: call(
                "POST",
                "/v1/classify/batch",
                reader,
                json={"tickets": [ticket(c) for _ in range(4)]},
            ),
        ),
        Kind(
            "suggest", 10, ok, True, lambda c: call("POST", "/v1/suggest", reader, json=ticket(c))
        ),
        Kind(
            "knowledge write",
            5,
            ok,
            True,
            lambda c: call("POST", "/v1/knowledge", writer, json={"entries": [entry(c)]}),
        ),
        Kind(
            "malformed JSON",
            5,
            frozenset({400}),
            False,
            lambda c: call(
                "POST",
                "/v1/classify",
                {**reader, "Content-Type": "application/json"},
                content=b'{"body": "unterminated',
            ),
        ),
        Kind(
            "no key",
            5,
            frozenset({401}),
            False,
            lambda c: call("POST", "/v1/classify", {}, json=ticket(c)),
        ),
        Kind(
            "wrong scope",
            4,
            frozenset({403}),
            False,
            lambda c: call("POST", "/v1/knowledge", reader, json={"entries": [entry(c)]}),
        ),
        Kind(
            "oversized body",
            3,
            frozenset({413}),
            False,
            lambda c: call("POST", "/v1/classify", reader, json={"body": "x" * 2_100_000}),
        ),
        Kind(
            "blank ticket",
            5,
            frozenset({400}),
            False,
            lambda c: call("POST", "/v1/classify", reader, json={"body": "   "}),
        ),
        Kind(
            "overlong ticket",
            5,
            frozenset({400}),
            False,
            lambda c: call("POST", "/v1/classify", reader, json={"body": "word " * 5000}),
        ),
    ]


# The server.


def _start_server(config: SoakConfig, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(config.model_dir),
        "TRIAGE_DATA_DIR": str(data_dir),
        "TRIAGE_PORT": str(port),
        "TRIAGE_AUTH_ENABLED": "true",
        # Well above the offered rate: the soak measures the service, not the limiter.
        "TRIAGE_RATE_LIMIT_REQUESTS": str(int(config.rate * 60 * 4) + 100),
        "TRIAGE_LOG_LEVEL": "WARNING",
    }
    with (config.output / "server.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "serve"], env=environment, stdout=log, stderr=log
        )


def _resident_mib(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


# The load.


async def _drive(
    url: str, config: SoakConfig, kinds: list[Kind], pid: int
) -> tuple[list[Outcome], Samples, int]:
    chance = random.Random(config.seed)
    weights = [kind.weight for kind in kinds]
    outcomes: list[Outcome] = []
    samples = Samples()
    in_flight: set[asyncio.Task[None]] = set()
    skipped = 0
    limits = httpx.Limits(max_connections=config.max_in_flight)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def send(kind: Kind, request: dict[str, Any], sent_at: float) -> None:
            began = time.perf_counter()
            try:
                answer = await client.request(**request)
                status: int | None = answer.status_code
            except httpx.HTTPError:
                status = None
            latency = (time.perf_counter() - began) * 1000
            outcomes.append(Outcome(kind.name, sent_at, latency, status, status in kind.expected))

        async def sample_memory(start: float) -> None:
            while True:
                samples.seconds.append(time.monotonic() - start)
                samples.rss_mib.append(_resident_mib(pid))
                await asyncio.sleep(1.0)

        from tqdm.auto import tqdm

        start = time.monotonic()
        sampler = asyncio.create_task(sample_memory(start))
        total = int(config.duration_s * config.rate)
        with tqdm(total=total, desc="soak", unit="request") as progress:
            for number in range(total):
                # Open loop: request n leaves at n / rate, however slow the answers are.
                delay = start + number / config.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(in_flight) >= config.max_in_flight:
                    skipped += 1
                else:
                    kind = chance.choices(kinds, weights)[0]
                    task = asyncio.create_task(
                        send(kind, kind.build(chance), time.monotonic() - start)
                    )
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                progress.update()
            await asyncio.gather(*in_flight)
        sampler.cancel()
    return outcomes, samples, skipped


# The report.


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    values = np.percentile(latencies, [50, 95, 99])
    return {f"p{q}_ms": round(float(v), 1) for q, v in zip((50, 95, 99), values, strict=True)}


def memory_verdict(samples: Samples) -> dict[str, Any]:
    """Fit a line to resident memory after warm-up; flat when its rise is small."""
    seconds, rss = np.asarray(samples.seconds), np.asarray(samples.rss_mib)
    if len(rss) < 10:
        return {"verdict": "too short to judge", "samples": len(rss)}
    measured = seconds >= seconds[-1] * WARM_UP_SHARE
    slope, _ = np.polyfit(seconds[measured], rss[measured], 1)
    span = float(seconds[measured][-1] - seconds[measured][0])
    rise = float(slope * span)
    mean = float(rss[measured].mean())
    allowed = max(FLAT_SHARE * mean, FLAT_MIB)
    return {
        "verdict": "flat" if rise <= allowed else "growing",
        "start_mib": round(float(rss[0]), 1),
        "after_warm_up_mib": round(float(rss[measured][0]), 1),
        "end_mib": round(float(rss[-1]), 1),
        "peak_mib": round(float(rss.max()), 1),
        "trend_mib_per_hour": round(float(slope) * 3600, 1),
        "trend_rise_mib": round(rise, 1),
        "allowed_rise_mib": round(allowed, 1),
        "samples": len(rss),
    }


def summarise(
    config: SoakConfig, outcomes: list[Outcome], samples: Samples, skipped: int, ready_s: float
) -> dict[str, Any]:
    by_kind: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_kind.setdefault(outcome.kind, []).append(outcome)
    unexpected = [o for o in outcomes if not o.expected]
    windows = []
    for begin in np.arange(0, config.duration_s, WINDOW_S):
        inside = [o for o in outcomes if begin <= o.sent_at < begin + WINDOW_S]
        good = [o.latency_ms for o in inside if o.expected and o.status == 200]
        windows.append(
            {
                "start_s": float(begin),
                "requests": len(inside),
                "errors": sum(not o.expected for o in inside),
                **_percentiles(good),
            }
        )
    good_latencies = [o.latency_ms for o in outcomes if o.expected and o.status == 200]
    return {
        "config": {
            "model_dir": str(config.model_dir),
            "duration_s": config.duration_s,
            "rate_per_s": config.rate,
            "seed": config.seed,
        },
        "server_ready_s": round(ready_s, 1),
        "requests": len(outcomes),
        "not_sent_in_flight_cap": skipped,
        "errors": len(unexpected),
        "server_errors_5xx": sum(o.status is not None and o.status >= 500 for o in outcomes),
        "no_answer": sum(o.status is None for o in outcomes),
        "unexpected_statuses": dict(
            Counter(f"{o.kind}: {o.status}" for o in unexpected).most_common(20)
        ),
        "achieved_rate_per_s": round(len(outcomes) / config.duration_s, 2),
        "good_latency": _percentiles(good_latencies),
        "kinds": {
            name: {
                "requests": len(items),
                "errors": sum(not o.expected for o in items),
                "statuses": dict(Counter(str(o.status) for o in items)),
                **_percentiles([o.latency_ms for o in items]),
            }
            for name, items in sorted(by_kind.items())
        },
        "windows": windows,
        "memory": memory_verdict(samples),
        "memory_samples": {"seconds": samples.seconds, "rss_mib": samples.rss_mib},
    }


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = report["windows"]
    middles = [(w["start_s"] + WINDOW_S / 2) / 60 for w in windows]
    figure, (latency, errors, memory) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for key, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
        latency.plot(middles, [w[key] for w in windows], style, label=key.split("_")[0])
    latency.set_ylabel("latency of good requests (ms)")
    latency.set_ylim(bottom=0)
    latency.legend()
    latency.grid(alpha=0.3)
    errors.bar(middles, [w["errors"] for w in windows], width=WINDOW_S / 60 * 0.8, color="tab:red")
    errors.set_ylim(bottom=0, top=max(1, *(w["errors"] for w in windows)) * 1.1)
    errors.set_ylabel(f"errors per {WINDOW_S:.0f} s")
    errors.grid(alpha=0.3)
    samples = report["memory_samples"]
    memory.plot([s / 60 for s in samples["seconds"]], samples["rss_mib"], color="tab:green")
    memory.set_ylabel("server resident memory (MiB)")
    memory.set_xlabel("minutes")
    memory.grid(alpha=0.3)
    verdict = report["memory"]
    figure.suptitle(
        f"soak: {report['requests']} requests at {report['config']['rate_per_s']:g}/s, "
        f"{report['errors']} errors, memory {verdict['verdict']}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(report: dict[str, Any]) -> str:
    memory = report["memory"]
    good = report["good_latency"]
    lines = [
        "# Soak report",
        "",
        f"{report['requests']} requests in {report['config']['duration_s']:g} s at "
        f"{report['config']['rate_per_s']:g} per second (achieved "
        f"{report['achieved_rate_per_s']:g}), bundle `{report['config']['model_dir']}`. "
        f"Server ready after {report['server_ready_s']} s.",
        "",
        f"- **Errors: {report['errors']}** (unexpected statuses: 5xx "
        f"{report['server_errors_5xx']}, no answer {report['no_answer']}); not sent because "
        f"{report['not_sent_in_flight_cap']} would have exceeded the in-flight cap.",
        f"- Good requests answered 200: p50 {good['p50_ms']} ms, p95 {good['p95_ms']} ms, "
        f"p99 {good['p99_ms']} ms.",
        f"- **Memory: {memory['verdict']}**. " + _memory_sentence(memory),
        "",
        "| kind | requests | errors | statuses | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, kind in report["kinds"].items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(kind["statuses"].items()))
        lines.append(
            f"| {name} | {kind['requests']} | {kind['errors']} | {statuses} | "
            f"{kind['p50_ms']} | {kind['p95_ms']} | {kind['p99_ms']} |"
        )
    if report["unexpected_statuses"]:
        lines += [
            "",
            "Unexpected answers (kind: status): " + json.dumps(report["unexpected_statuses"]),
        ]
    lines += ["", "![latency, errors and memory over time](soak.png)", ""]
    return "\n".join(lines)


def _memory_sentence(memory: dict[str, Any]) -> str:
    if "trend_mib_per_hour" not in memory:
        return "Too few samples."
    sentence = (
        f"Resident memory {memory['start_mib']} MiB at start, "
        f"{memory['after_warm_up_mib']} MiB after warm-up, {memory['end_mib']} MiB at the end "
        f"(peak {memory['peak_mib']}); fitted trend after warm-up "
        f"{memory['trend_mib_per_hour']:+g} MiB/h, a rise of {memory['trend_rise_mib']:+g} MiB "
        f"over the run against {memory['allowed_rise_mib']} MiB allowed."
    )
    if memory["verdict"] == "growing":
        sentence += (
            " Growth this early can be allocator warm-up (ONNX Runtime keeps arenas per batch "
            "shape, and new shapes keep arriving); run longer to see whether it levels off."
        )
    return sentence


def run_soak(config: SoakConfig) -> dict[str, Any]:
    if not (config.model_dir / "config.json").is_file():
        raise SystemExit(
            f"error: --model-dir: expected a model bundle (config.json), found none in "
            f"{config.model_dir}; `make train-quick` or `make serve` makes one"
        )
    config.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="triage-soak-") as folder:
        data_dir = Path(folder)
        made = create_keys(
            data_dir,
            {"soak-writer": ["predict", "knowledge:write"], "soak-reader": ["predict"]},
        )
        keys = Keys(writer=made["soak-writer"], reader=made["soak-reader"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = _start_server(config, data_dir, port)
        try:
            ready_s = wait_until_ready(url, process, timeout_s=600, poll_s=0.5)
            kinds = request_kinds(keys, _tickets())
            outcomes, samples, skipped = asyncio.run(_drive(url, config, kinds, process.pid))
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=60)
    report = summarise(config, outcomes, samples, skipped, ready_s)
    report["server_alive_at_end"] = alive
    report["server_exit_code"] = process.returncode
    write_json(config.output / "soak.json", report)
    plot(report, config.output / "soak.png")
    (config.output / "soak.md").write_text(markdown(report), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.soak", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("onnx_models/ticket-triage"))
    parser.add_argument("--output", type=Path, default=Path("runs/soak"))
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0:
        parser.error("--duration and --rate: expected more than 0")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    config = SoakConfig(args.model_dir, args.output, args.duration, args.rate, args.seed)
    report = run_soak(config)
    logger.info(
        "%d requests, %d errors, memory %s; report in %s",
        report["requests"],
        report["errors"],
        report["memory"]["verdict"],
        config.output / "soak.md",
    )
    return 0 if report["errors"] == 0 and report["server_alive_at_end"] else 1


if __name__ == "__main__":
    sys.exit(main())

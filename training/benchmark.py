"""``make bench``: inference speed of one bundle against PyTorch and the machine's limit.

One run, one machine, one bundle, the same tickets for every engine:

1. **Engines**: the fine-tuned network in PyTorch eager through transformers (one ticket at
   a time, as a default pipeline runs, and at its best batch size), and the bundle's ONNX
   graphs in fp32 and INT8 as the service runs them. Each measurement is a process of its
   own (``training.benchmark_engines``), repeated ``--repeats`` times with the engines
   interleaved, and every figure is the median of the repeats: tickets per second, single
   ticket p50/p95 latency, peak memory, macro-F1 per head on the labelled tickets.
2. **Hardware**: achieved GFLOP/s from the network's FLOPs per ticket against the fp32
   peak of the machine: the larger of its nominal figure (clock x FMA width) and the
   fastest measured fp32 GEMM (numpy's BLAS and ONNX Runtime's own kernels).
3. **HTTP**: the real server (``python -m service serve``) under a closed-loop load
   generator in another process at concurrency 1, 8, 32 and 64, in each round right after
   the engines, so that its share of the runtime compares figures of the same round.
4. **Ablations**: each serving choice against its alternatives (batching, threads, graph
   optimisation, INT8 operator choices, token cap, layer norm form), so that every default
   is one the numbers support.
5. **GPU**: the same engines on CUDA in half precision when a CUDA device is present.

Writes ``report.md``, ``report.json`` and ``report.png`` into ``--output``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from sklearn.metrics import f1_score
from tqdm import tqdm

from service.inference.bundle import BundleError, ModelBundle
from training.benchmark_engines import MeasureSpec
from training.config import LAYER_NORM_CHOICES
from training.data import ColumnMapping, DataError, clean_tickets, frame_texts, load_tickets

__all__ = ["BenchConfig", "flops_per_ticket", "machine_peak", "run_benchmark"]

logger = logging.getLogger(__name__)

CPU_ENGINES = ("pytorch", "onnx-fp32", "onnx-int8")
GPU_ENGINES = ("pytorch-cuda-fp16", "onnx-cuda-fp16")
#: fp32 FLOPs per cycle and core with two 256-bit FMA pipes: 2 pipes x 8 lanes x 2.
#: AMD Zen 4 runs AVX-512 on the same two 256-bit pipes, so it is the same there.
FLOPS_PER_CYCLE_AVX2 = 32
#: Ablation groups whose choices change the predictions, so they are scored too.
NUMBER_CHANGING = ("token cap", "INT8 operators", "layer norm")


@dataclass
class BenchConfig:
    model_dir: Path
    tickets: list[str]
    output: Path = Path("runs/bench/inference")
    count: int = 1000
    latency_count: int = 1000
    sweep_count: int = 256
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 16, 32, 64])
    repeats: int = 3
    engines: list[str] = field(default_factory=lambda: list(CPU_ENGINES))
    threads: int = 0
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    http_seconds: float = 20.0
    http_variant: str = "int8"
    http: bool = True
    ablations: bool = True
    gpu: bool = True
    seed: int = 13
    column_mapping: Path | None = None
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = [
            message
            for ok, message in (
                (self.count >= 1, f"count: expected at least 1, found {self.count}"),
                (self.repeats >= 1, f"repeats: expected at least 1, found {self.repeats}"),
                (bool(self.batch_sizes), "batch sizes: expected at least one"),
                (all(b >= 1 for b in self.batch_sizes), "batch sizes: expected 1 or more each"),
                (all(c >= 1 for c in self.concurrency), "concurrency: expected 1 or more each"),
                (self.http_variant in ("fp32", "int8"), "http variant: expected fp32 or int8"),
            )
            if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))


# The tickets.


def load_bench_tickets(config: BenchConfig, heads: Sequence[str]) -> pd.DataFrame:
    """``count`` tickets from the files, every language in proportion, in a shuffled order."""
    mapping = (
        ColumnMapping.from_yaml(config.column_mapping, list(heads))
        if config.column_mapping
        else ColumnMapping.default(list(heads))
    ).with_overrides(config.columns)
    frame, _ = clean_tickets(
        load_tickets(config.tickets, mapping, list(heads)), mapping, list(heads), min_label_count=1
    )
    if len(frame) > config.count:
        share = config.count / len(frame)
        picked = [
            group.sample(max(1, round(len(group) * share)), random_state=config.seed)
            for _, group in frame.groupby("language")
        ]
        frame = pd.concat(picked).head(config.count)
    return frame.sample(frac=1.0, random_state=config.seed).reset_index(drop=True)


# The network's arithmetic and the machine's.


def flops_per_ticket(tokens: int, layers: int, hidden: int, intermediate: int) -> float:
    """fp32 multiply-adds x 2 of one ticket of ``tokens`` tokens through a BERT encoder.

    Per layer: the Q, K, V and output projections (4 H^2 per token), the feed-forward
    pair (2 H I per token) and attention's two T x T products (2 T H per token). The
    embedding lookup, layer norms, softmax and the heads are left out (under 1 %).
    """
    per_token = 4 * hidden * hidden + 2 * hidden * intermediate + 2 * tokens * hidden
    return 2.0 * layers * tokens * per_token


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo``, with the highest clock of any
    (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    clocks = []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
        if name.strip() == "cpu MHz":
            clocks.append(float(value))
    if clocks:
        fields["cpu MHz"] = str(max(clocks))
    return fields


def fma_flops_per_cycle(flags: set[str], vendor: str, family: int | None) -> int:
    """fp32 FLOPs one core can retire per cycle: two FMA pipes, 8 floats wide with AVX2
    and 16 with AVX-512, except on AMD before Zen 5 (family 26), whose AVX-512 runs as two
    256-bit halves."""
    if "fma" not in flags:
        return 0
    full_width = "avx512f" in flags and (vendor != "AuthenticAMD" or (family or 0) >= 26)
    return 64 if full_width else FLOPS_PER_CYCLE_AVX2


def _gemm_gflops(multiply: Callable[[], object], size: int, repeats: int) -> float:
    multiply()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        multiply()
        best = min(best, time.perf_counter() - tick)
    return 2 * size**3 / best / 1e9


def _onnxruntime_matmul(b: np.ndarray) -> Callable[[np.ndarray], object]:
    """One MatMul on ONNX Runtime's CPU provider: the GEMM kernels (MLAS) the runtime's
    fp32 graph runs on."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    size = b.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda a: session.run(None, {"a": a})


def machine_peak(repeats: int = 5, size: int = 2048) -> dict[str, Any]:
    """The fp32 peak: the larger of the nominal one (cores x clock x FMA width) and the
    fastest measured fp32 GEMM (numpy's BLAS, and ONNX Runtime's own kernels)."""
    cores = os.cpu_count() or 1
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    mhz = float(info["cpu MHz"]) if "cpu MHz" in info else None
    family = int(info["cpu family"]) if info.get("cpu family", "").isdigit() else None
    model_name = info.get("model name", platform.machine())
    per_cycle = fma_flops_per_cycle(flags, info.get("vendor_id", ""), family)
    theoretical = cores * mhz * 1e6 * per_cycle / 1e9 if mhz and per_cycle else None

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    gemms = {
        "numpy": _gemm_gflops(lambda: a @ b, size, repeats),
        "ONNX Runtime": _gemm_gflops(partial(_onnxruntime_matmul(b), a), size, repeats),
    }
    fastest = max(gemms, key=gemms.__getitem__)
    nominal = (
        f"{cores} cores x {mhz:.0f} MHz x {per_cycle} fp32 FLOP/cycle (two FMA pipes of"
        f" {per_cycle // 4} floats)"
        if theoretical
        else "no nominal figure (no clock or FMA in /proc/cpuinfo)"
    )
    return {
        "cores": cores,
        "processor": platform.processor() or model_name,
        "model_name": model_name,
        "cpu_family": family,
        "mhz": mhz,
        "isa": sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16"}),
        "flops_per_cycle": per_cycle,
        "theoretical_gflops": theoretical,
        "gemm_gflops": gemms,
        "peak_gflops": max(theoretical or 0.0, gemms[fastest]),
        "peak_method": (
            nominal
            if theoretical and theoretical >= gemms[fastest]
            else f"the best of {repeats} {fastest} fp32 GEMMs of {size}x{size}, above the"
            f" nominal {theoretical or 0:.0f} GFLOP/s ({nominal}): the cores run above"
            " their nominal clock"
        ),
    }


# Measurements in processes of their own.


def _run_child(module: str, payload: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    spec_path, out_path = work / f"{name}.spec.json", work / f"{name}.out.json"
    spec_path.write_text(json.dumps(payload), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", module, str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    loaded: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return loaded


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def _macro_f1(frame: pd.DataFrame, bundle: ModelBundle, predicted: dict[str, list[int]]) -> dict:
    """Macro-F1 per head of predictions for the first rows of ``frame``."""
    scores = {}
    for head, labels in bundle.heads.items():
        if head not in frame.columns or not predicted.get(head):
            continue
        frame = frame.head(len(predicted[head]))
        known = (frame[head] != "").to_numpy()
        names = np.array([labels[i] for i in predicted[head]])
        if known.any():
            scores[head] = float(
                f1_score(
                    frame[head].to_numpy()[known], names[known], average="macro", zero_division=0
                )
            )
    return scores


def _summarise_engine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of one engine."""
    sizes = sorted({int(b) for run in runs for b in run["sweep_tickets_per_s"]})
    latencies = [run["single_latency_ms"] for run in runs]
    return {
        "load_s": _median([r["load_s"] for r in runs]),
        "single_tickets_per_s": _median([r["single_tickets_per_s"] for r in runs]),
        "single_p50_ms": _median([_percentile(v, 50) for v in latencies]),
        "single_p95_ms": _median([_percentile(v, 95) for v in latencies]),
        "sweep_tickets_per_s": {
            size: _median([r["sweep_tickets_per_s"][str(size)] for r in runs]) for size in sizes
        },
        "best_batch_size": statistics.mode([r["best_batch_size"] for r in runs]),
        "best_tickets_per_s": _median([r["best_tickets_per_s"] for r in runs]),
        "best_tickets_per_s_runs": [r["best_tickets_per_s"] for r in runs],
        "peak_rss_mib": _median([r["peak_rss_mib"] for r in runs]),
        "details": runs[0]["details"],
    }


def _measure(
    config: BenchConfig, engine: str, texts: list[str], work: Path, name: str, **overrides: Any
) -> dict[str, Any]:
    """One measurement of ``engine`` in a process of its own."""
    fields: dict[str, Any] = {
        "engine": engine,
        "model_dir": str(config.model_dir),
        "texts": texts,
        "latency_count": min(config.latency_count, len(texts)),
        "sweep_count": min(config.sweep_count, len(texts)),
        "batch_sizes": list(config.batch_sizes),
        "threads": config.threads,
        "scratch": str(work),
    }
    spec = MeasureSpec(**{**fields, **overrides})
    return _run_child("training.benchmark_engines", asdict(spec), work, name)


def _http_level(level: list[dict[str, Any]], runtime_runs: list[float]) -> dict[str, Any]:
    """Medians over the rounds of one concurrency; its share of the runtime is the median
    of each round's ratio to the runtime measured in the same round."""
    shares = [r["requests_per_s"] / t for r, t in zip(level, runtime_runs, strict=False) if t]
    return {
        "requests_per_s": _median([r["requests_per_s"] for r in level]),
        "requests_per_s_runs": [r["requests_per_s"] for r in level],
        "share_of_runtime": _median(shares) if shares else None,
        "p50_ms": _median([r["p50_ms"] for r in level]),
        "p99_ms": _median([r["p99_ms"] for r in level]),
        "errors": sum(r["errors"] for r in level),
        "requests": sum(r["requests"] for r in level),
        "client_cpu_ms": _median([r["client_cpu_ms"] for r in level]),
        "server_cpu_ms": _median([r["server_cpu_ms"] for r in level]),
    }


class HttpBench:
    """The real server (``python -m service serve``) for the load generator's levels; it
    stays up between rounds, idle while the engines are measured."""

    def __init__(self, config: BenchConfig, tickets: list[tuple[str, str]], work: Path) -> None:
        self.config, self.tickets, self.work = config, tickets, work

    def __enter__(self) -> HttpBench:
        import psutil

        from service.local_server import create_keys, free_port, wait_until_ready

        data_dir = self.work / "server"
        data_dir.mkdir()
        self.key = create_keys(data_dir, {"bench": ["predict"]})["bench"]
        port = free_port()
        environment = {
            **os.environ,
            "TRIAGE_MODEL_DIR": str(self.config.model_dir),
            "TRIAGE_MODEL_VARIANT": self.config.http_variant,
            "TRIAGE_DATA_DIR": str(data_dir),
            "TRIAGE_PORT": str(port),
            "TRIAGE_RATE_LIMIT_REQUESTS": "1000000",
            "TRIAGE_LOG_LEVEL": "WARNING",
        }
        if self.config.threads:
            environment["TRIAGE_THREADS"] = str(self.config.threads)
        self.url = f"http://127.0.0.1:{port}"
        with (self.work / "server.log").open("wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"], env=environment, stdout=log, stderr=log
            )
        try:
            self.ready_s = wait_until_ready(self.url, self.server, timeout_s=300)
        except BaseException:
            self.__exit__()
            raise
        self.process = psutil.Process(self.server.pid)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.terminate()
        self.server.wait(timeout=60)

    def level(self, concurrency: int, name: str) -> dict[str, Any]:
        """One closed-loop run at ``concurrency`` clients, with the server's CPU per request."""
        payload = {
            "url": self.url,
            "key": self.key,
            "tickets": self.tickets,
            "concurrency": concurrency,
            "seconds": self.config.http_seconds,
        }
        cpu_before = sum(self.process.cpu_times()[:2])
        result = _run_child("training.benchmark", payload, self.work, name)
        # The server's CPU per request, its warm-up requests counted as answered ones.
        cpu_ms = (sum(self.process.cpu_times()[:2]) - cpu_before) * 1000
        result["server_cpu_ms"] = cpu_ms / max(result["requests"] + concurrency, 1)
        return result


def measure_rounds(
    config: BenchConfig,
    engines: Sequence[str],
    texts: list[str],
    tickets: list[tuple[str, str]],
    work: Path,
    progress: tqdm,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any] | None]:
    """``config.repeats`` rounds, each measuring every engine and then every HTTP level, so
    that each ratio compares figures taken minutes apart rather than a whole run apart."""
    runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    levels: dict[int, list[dict[str, Any]]] = {c: [] for c in config.concurrency}
    with ExitStack() as stack:
        server = stack.enter_context(HttpBench(config, tickets, work)) if config.http else None
        for round_number in range(config.repeats):
            for engine in engines:
                progress.set_postfix_str(f"{engine} round {round_number + 1}")
                runs[engine].append(
                    _measure(config, engine, texts, work, f"{engine}-{round_number}")
                )
                progress.update(1)
            if server is None:
                continue
            for concurrency in config.concurrency:
                progress.set_postfix_str(f"HTTP c={concurrency} round {round_number + 1}")
                name = f"http-{concurrency}-{round_number}"
                levels[concurrency].append(server.level(concurrency, name))
                progress.update(1)
    if server is None:
        return runs, None
    runtime = runs.get(f"onnx-{config.http_variant}", [])
    runtime_runs = [r["best_tickets_per_s"] for r in runtime]
    return runs, {
        "variant": config.http_variant,
        "ready_s": server.ready_s,
        "seconds_per_level": config.http_seconds,
        "levels": {c: _http_level(level, runtime_runs) for c, level in levels.items()},
    }


async def _load(
    url: str, key: str, tickets: list[list[str]], concurrency: int, seconds: float
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` clients, each sending its next ticket when answered.

    aiohttp rather than httpx: the generator shares the machine's cores with the server, and
    aiohttp spends less of them per request (``client_cpu_ms`` records what it did spend).
    """
    import resource

    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))
    endpoint = f"{url}/v1/classify"

    async def client_loop(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            subject, body = tickets[next(counter) % len(tickets)]
            tick = time.perf_counter()
            try:
                async with session.post(endpoint, json={"subject": subject, "body": body}) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append((time.perf_counter() - tick) * 1000)
            else:
                errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        # A short warm-up at this concurrency, not counted.
        async def warm_up(i: int) -> None:
            body = {"body": tickets[i % len(tickets)][1]}
            async with session.post(endpoint, json=body) as r:
                await r.read()

        await asyncio.gather(*(warm_up(i) for i in range(concurrency)), return_exceptions=True)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    requests = len(latencies) + errors
    return {
        "requests": requests,
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "client_cpu_ms": cpu_s * 1000 / max(requests, 1),
    }


# Ablations: each serving choice against its alternatives.


#: The INT8 choices measured: name, feed-forward projections quantised, signed weights,
#: one scale per output column.
INT8_CHOICES = (
    ("attention only, u8", "none", False, True),
    ("attention only, s8", "none", True, True),
    ("+ feed-forward input, s8", "input", True, True),
    ("+ both feed-forward, u8", "all", False, True),
    ("+ both feed-forward, s8", "all", True, True),
    ("+ both feed-forward, s8, one scale per matrix", "all", True, False),
)
#: What bundles that do not record their INT8 choice were quantised with.
EARLIER_INT8 = {"feed_forward": "none", "signed_weights": False, "per_channel": True}

#: One ablation: its group, the option's name, the engine, and the measurement's overrides.
Case = tuple[str, str, str, dict[str, Any]]


def ablation_cases(bundle: ModelBundle, work: Path) -> list[Case]:
    """Every serving choice and its alternatives; the INT8 graphs are named by the file
    they will be quantised into (``quantise_choices`` writes them)."""
    cases: list[Case] = [
        ("batching", "length-grouped (served)", "onnx-fp32", {"batching": "sorted"}),
        ("batching", "arrival order", "onnx-fp32", {"batching": "arrival"}),
        ("threads", "ONNX Runtime's choice (served)", "onnx-fp32", {}),
        ("threads", "1 intra-op thread", "onnx-fp32", {"threads": 1}),
        ("graph optimisation", "all (served)", "onnx-fp32", {"optimisation": "all"}),
        ("graph optimisation", "basic", "onnx-fp32", {"optimisation": "basic"}),
        ("graph optimisation", "none", "onnx-fp32", {"optimisation": "none"}),
    ]
    for cap in (64, 128, 256):
        if cap != bundle.max_length:
            cases.append(("token cap", f"{cap} tokens", "onnx-int8", {"max_length": cap}))
    cases.append(("token cap", f"{bundle.max_length} tokens (bundle)", "onnx-int8", {}))
    own = bundle.raw.get("int8_quantization", EARLIER_INT8)
    for name, feed_forward, signed, per_channel in INT8_CHOICES:
        choice = {
            "feed_forward": feed_forward,
            "signed_weights": signed,
            "per_channel": per_channel,
        }
        graph = work / f"model.int8.{feed_forward}.{signed:d}{per_channel:d}.onnx"
        label = f"{name} (bundle)" if choice == own else name
        cases.append(("INT8 operators", label, "onnx-int8", {"graph": str(graph), **choice}))
    # Layer norm: the bundle's graphs against both rewritten into the other form.
    form = bundle.raw.get("layer_norm", "fused")
    other = next(choice for choice in LAYER_NORM_CHOICES if choice != form)
    names = {"operators": "standard operators", "fused": "ONNX Runtime's fused kernel"}
    for engine in ("onnx-fp32", "onnx-int8"):
        variant = engine.removeprefix("onnx-")
        graph = work / f"model.{variant}.layer-norm-{other}.onnx"
        cases.append(("layer norm", f"{names[form]} (bundle)", engine, {}))
        cases.append(
            ("layer norm", names[other], engine, {"graph": str(graph), "layer_norm": other})
        )
    return cases


def quantise_choices(bundle: ModelBundle, cases: Sequence[Case]) -> list[Case]:
    """Quantise each INT8 case's graph from the bundle's fp32 graph; the cases as the
    measurement takes them (the graph's path, not the choice)."""
    from training.export import quantize_int8
    from training.layer_norm import rewrite_graph_file

    measured: list[Case] = []
    for group, label, engine, overrides in cases:
        if "layer_norm" in overrides:
            # The INT8 graph in the other form: quantised from the rewritten fp32 graph
            # with the bundle's own choices, as training would have made it.
            graph = Path(overrides["graph"])
            fp32 = graph.with_name(f"model.fp32.layer-norm-{overrides['layer_norm']}.onnx")
            if not fp32.exists():
                rewrite_graph_file(bundle.model_path("fp32"), fp32, overrides["layer_norm"])
            if engine == "onnx-int8":
                own = bundle.raw.get("int8_quantization", EARLIER_INT8)
                quantize_int8(fp32, graph, **own)
            overrides = {"graph": str(fp32 if engine == "onnx-fp32" else graph)}
        elif "feed_forward" in overrides:
            quantize_int8(
                bundle.model_path("fp32"),
                Path(overrides["graph"]),
                feed_forward=overrides["feed_forward"],
                signed_weights=overrides["signed_weights"],
                per_channel=overrides["per_channel"],
            )
            overrides = {"graph": overrides["graph"]}
        measured.append((group, label, engine, overrides))
    return measured


def measure_ablations(
    config: BenchConfig,
    frame: pd.DataFrame,
    texts: list[str],
    bundle: ModelBundle,
    cases: Sequence[Case],
    work: Path,
    progress: tqdm,
    reference: dict[str, list[int]],
) -> list[dict[str, Any]]:
    """One row per choice: its throughput at batch size 32 (median of the repeats) and, for
    choices that change the numbers, macro-F1 and agreement with fp32 on every ticket."""
    subset_config = BenchConfig(**{**asdict(config), "batch_sizes": [32], "latency_count": 0})
    cases = quantise_choices(bundle, cases)

    # Rounds outside, cases inside, as for the engines; the numbers only in the first round.
    runs: list[list[dict[str, Any]]] = [[] for _ in cases]
    for round_number in range(config.repeats):
        for index, (group, label, engine, overrides) in enumerate(cases):
            progress.set_postfix_str(f"{group}: {label} round {round_number + 1}")
            full_pass = round_number == 0 and group in NUMBER_CHANGING
            runs[index].append(
                _measure(
                    subset_config,
                    engine,
                    texts,
                    work,
                    f"ablation-{index}-{round_number}",
                    full_pass=full_pass,
                    **overrides,
                )
            )
            progress.update(1)

    rows = []
    for (group, label, engine, _), case_runs in zip(cases, runs, strict=True):
        row: dict[str, Any] = {
            "group": group,
            "choice": label,
            "engine": engine,
            "tickets_per_s": _median([r["sweep_tickets_per_s"]["32"] for r in case_runs]),
        }
        if group in NUMBER_CHANGING:
            predicted = case_runs[0]["predictions"]
            row["macro_f1"] = _macro_f1(frame, bundle, predicted)
            row["agreement_with_fp32"] = {
                head: float(np.mean(np.array(predicted[head]) == np.array(reference[head])))
                for head in predicted
            }
        rows.append(row)
    return rows


# The whole run.


def _gpu_available() -> tuple[bool, str]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, f"ONNX Runtime has no CUDA provider ({ort.get_available_providers()})"
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    return True, torch.cuda.get_device_name(0)


def _intermediate_size(model_dir: Path, hidden: int) -> int:
    from training.reference import REFERENCE_FOLDER

    path = model_dir / REFERENCE_FOLDER / "config.json"
    if path.is_file():
        return int(
            json.loads(path.read_text(encoding="utf-8")).get("intermediate_size", 4 * hidden)
        )
    return 4 * hidden


def run_benchmark(config: BenchConfig, console: Console) -> dict[str, Any]:
    """Every section of the report; writes report.json, report.md and report.png."""
    from training.benchmark_report import write_report

    bundle = ModelBundle.load(config.model_dir)
    if any(engine.startswith("pytorch") for engine in config.engines):
        from training.reference import ReferenceError, require_reference

        try:
            require_reference(config.model_dir)
        except ReferenceError as exc:
            raise ReferenceError(
                f"{exc}, or leave PyTorch out with --engines onnx-fp32 onnx-int8"
            ) from exc
    frame = load_bench_tickets(config, list(bundle.heads))
    texts = frame_texts(frame, bundle.text_prefix)
    tokenizer = bundle.tokenizer()
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    console.print(
        f"{len(texts)} tickets ({dict(frame['language'].value_counts())}), tokens per ticket "
        f"median {int(np.median(lengths))}, max {max(lengths)} (cap {bundle.max_length})"
    )
    machine = machine_peak()
    console.print(
        f"machine: {machine['model_name']}, {machine['cores']} cores, peak "
        f"{machine['peak_gflops']:.0f} GFLOP/s ({machine['peak_method']}); measured GEMMs "
        + ", ".join(f"{name} {value:.0f}" for name, value in machine["gemm_gflops"].items())
        + " GFLOP/s"
    )
    engines = list(config.engines)
    gpu_ok, gpu_reason = _gpu_available() if config.gpu else (False, "switched off")
    if gpu_ok:
        engines += [e for e in GPU_ENGINES if e not in engines]

    layers = int(bundle.raw["encoder"]["layers"])
    hidden = int(bundle.raw["encoder"]["hidden_size"])
    intermediate = _intermediate_size(config.model_dir, hidden)
    ticket_flops = [flops_per_ticket(n, layers, hidden, intermediate) for n in lengths]

    config.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        cases = ablation_cases(bundle, work) if config.ablations else []
        steps = config.repeats * (len(engines) + len(cases))
        steps += config.repeats * len(config.concurrency) if config.http else 0
        with tqdm(total=steps, desc="bench", unit="run") as progress:
            raw = list(zip(frame["subject"].tolist(), frame["body"].tolist(), strict=True))
            runs, http = measure_rounds(config, engines, texts, raw, work, progress)
            results: dict[str, Any] = {}
            for engine, engine_runs in runs.items():
                summary = _summarise_engine(engine_runs)
                summary["macro_f1"] = _macro_f1(frame, bundle, engine_runs[0]["predictions"])
                summary["single_macro_f1"] = _macro_f1(
                    frame, bundle, engine_runs[0]["single_predictions"]
                )
                seconds = len(texts) / summary["best_tickets_per_s"]
                summary["gflops"] = sum(ticket_flops) / seconds / 1e9
                summary["share_of_peak"] = summary["gflops"] / machine["peak_gflops"]
                results[engine] = summary
            ablations = (
                measure_ablations(
                    config,
                    frame,
                    texts,
                    bundle,
                    cases,
                    work,
                    progress,
                    runs["onnx-fp32"][0]["predictions"],
                )
                if cases and "onnx-fp32" in runs
                else []
            )

    report = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "bundle": {
            "directory": str(config.model_dir),
            "name": bundle.name,
            "version": bundle.version,
            "max_length": bundle.max_length,
            "encoder": bundle.raw["encoder"],
            "intermediate_size": intermediate,
        },
        "tickets": {
            "files": config.tickets,
            "count": len(texts),
            "languages": {str(k): int(v) for k, v in frame["language"].value_counts().items()},
            "tokens_median": float(np.median(lengths)),
            "tokens_p95": float(np.percentile(lengths, 95)),
            "tokens_max": int(max(lengths)),
            "gflop_per_ticket_mean": float(np.mean(ticket_flops) / 1e9),
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(config).items()
            if k not in ("tickets",)
        },
        "machine": machine,
        "engines": results,
        "gpu": {"ran": gpu_ok, "reason": gpu_reason},
        "http": http,
        "ablations": ablations,
    }
    report["targets"] = targets(report)
    write_report(report, config.output)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures the runtime is held to, each with its value and whether it is met."""
    engines = report["engines"]
    rows: list[dict[str, Any]] = []
    if {"pytorch", "onnx-int8"} <= engines.keys():
        int8, torch_ = engines["onnx-int8"], engines["pytorch"]
        default_ratio = int8["best_tickets_per_s"] / torch_["single_tickets_per_s"]
        best_ratio = int8["best_tickets_per_s"] / torch_["best_tickets_per_s"]
        rows.append(_target("INT8 / PyTorch default pipeline", default_ratio, 4.0, "x"))
        rows.append(_target("INT8 / PyTorch at its best batch size", best_ratio, 2.0, "x"))
    if {"onnx-fp32", "onnx-int8"} <= engines.keys():
        worst = max(
            engines["onnx-fp32"]["macro_f1"][h] - engines["onnx-int8"]["macro_f1"][h]
            for h in engines["onnx-fp32"]["macro_f1"]
        )
        rows.append(
            {
                "target": "INT8 macro-F1 within 1 point of fp32 on every head",
                "value": (
                    f"largest loss {worst * 100:.2f} points"
                    if worst > 0
                    else f"no loss on any head (at least {-worst * 100:.2f} points better)"
                    if worst < 0
                    else "no loss on any head"
                ),
                "met": worst <= 0.01,
            }
        )
    if "onnx-fp32" in engines:
        share = engines["onnx-fp32"]["share_of_peak"]
        rows.append(_target("fp32 runtime share of the fp32 peak", share * 100, 50.0, " %"))
    http = report.get("http")
    variant_engine = f"onnx-{http['variant']}" if http else None
    if http and 32 in http["levels"] and variant_engine in engines:
        level = http["levels"][32]
        share = level["share_of_runtime"]
        rows.append(_target("HTTP at concurrency 32 / runtime", share * 100, 80.0, " %"))
        rows.append(
            {
                "target": "HTTP errors at concurrency 32",
                "value": str(level["errors"]),
                "met": level["errors"] == 0,
            }
        )
    return rows


def _target(name: str, value: float, goal: float, unit: str) -> dict[str, Any]:
    return {
        "target": f"{name} (at least {goal:g}{unit})",
        "value": f"{value:.2f}{unit}",
        "met": value >= goal,
    }


def _parse(argv: list[str] | None) -> BenchConfig:
    defaults = BenchConfig(model_dir=Path(), tickets=[])
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="bundle onnx_models/<name>")
    parser.add_argument("--tickets", nargs="+", required=True, help="labelled ticket files")
    parser.add_argument("--output", type=Path, default=defaults.output)
    for name in ("count", "latency_count", "sweep_count", "repeats", "threads", "seed"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=defaults.batch_sizes)
    parser.add_argument("--concurrency", type=int, nargs="+", default=defaults.concurrency)
    parser.add_argument("--http-seconds", type=float, default=defaults.http_seconds)
    parser.add_argument("--http-variant", default=defaults.http_variant, choices=["fp32", "int8"])
    parser.add_argument("--engines", nargs="+", default=defaults.engines, choices=CPU_ENGINES)
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false")
    parser.add_argument("--no-gpu", dest="gpu", action="store_false")
    parser.add_argument("--column-mapping", type=Path)
    parser.add_argument("--column", dest="columns", action="append", default=[])
    return BenchConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    # A load-generator child: python -m training.benchmark SPEC.json OUTPUT.json
    if len(arguments) == 2 and arguments[0].endswith(".spec.json"):
        spec = json.loads(Path(arguments[0]).read_text(encoding="utf-8"))
        result = asyncio.run(
            _load(spec["url"], spec["key"], spec["tickets"], spec["concurrency"], spec["seconds"])
        )
        Path(arguments[1]).write_text(json.dumps(result), encoding="utf-8")
        return 0

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        config = _parse(arguments)
        report = run_benchmark(config, console)
    except (ValueError, BundleError, DataError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    for row in report["targets"]:
        mark = "[green]met[/green]" if row["met"] else "[red]missed[/red]"
        console.print(f"{row['target']}: {row['value']} {mark}")
    console.print(f"report written to {config.output}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

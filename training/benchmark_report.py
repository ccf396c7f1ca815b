"""The benchmark's report: ``report.json`` (every figure), ``report.md`` and ``report.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["write_report"]

NAMES = {
    "pytorch": "PyTorch eager (transformers)",
    "onnx-fp32": "ONNX Runtime fp32",
    "onnx-int8": "ONNX Runtime INT8",
    "pytorch-cuda-fp16": "PyTorch CUDA fp16",
    "onnx-cuda-fp16": "ONNX Runtime CUDA fp16",
}


def write_report(report: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    _plot(report, output / "report.png")
    (output / "report.md").write_text(_markdown(report), encoding="utf-8")


def _plot(report: dict[str, Any], path: Path) -> None:
    http = report.get("http")
    figure, axes = plt.subplots(1, 2 if http else 1, figsize=(12 if http else 6.5, 4.4))
    throughput = axes[0] if http else axes
    for engine, result in report["engines"].items():
        sizes = sorted(int(s) for s in result["sweep_tickets_per_s"])
        rates = [result["sweep_tickets_per_s"][s] for s in sizes]
        throughput.plot(sizes, rates, marker="o", label=NAMES.get(engine, engine))
    throughput.set_xscale("log", base=2)
    throughput.set_xlabel("batch size")
    throughput.set_ylabel("tickets per second (median)")
    throughput.set_title("Throughput against batch size")
    throughput.grid(alpha=0.3)
    throughput.legend(fontsize=8)
    if http:
        latency = axes[1]
        levels = sorted(int(c) for c in http["levels"])
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            latency.plot(levels, [http["levels"][c][key] for c in levels], marker="o", label=label)
        latency.set_xscale("log", base=2)
        latency.set_xlabel("concurrent clients")
        latency.set_ylabel("latency (ms)")
        latency.set_title(f"HTTP /v1/classify ({http['variant']}): latency against concurrency")
        latency.grid(alpha=0.3)
        rates = latency.twinx()
        rates.plot(
            levels,
            [http["levels"][c]["requests_per_s"] for c in levels],
            marker="s",
            color="grey",
            linestyle="--",
            label="requests/s",
        )
        rates.set_ylabel("requests per second")
        handles = latency.get_legend_handles_labels()
        more = rates.get_legend_handles_labels()
        latency.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _markdown(report: dict[str, Any]) -> str:
    bundle, tickets, machine = report["bundle"], report["tickets"], report["machine"]
    settings = report["settings"]
    engines = report["engines"]
    lines = [
        f"# Inference benchmark: {bundle['name']} {bundle['version']}",
        "",
        f"Run {report['created']} on {machine['model_name']}"
        + (f" (CPU family {machine['cpu_family']})" if machine.get("cpu_family") else "")
        + f" ({machine['cores']} cores, "
        f"{', '.join(machine['isa'])}). {tickets['count']} tickets from "
        f"{', '.join(Path(f).name for f in tickets['files'])}, languages "
        f"{', '.join(f'{k} {v}' for k, v in tickets['languages'].items())}; tokens per ticket "
        f"median {tickets['tokens_median']:.0f}, p95 {tickets['tokens_p95']:.0f}, cap "
        f"{bundle['max_length']}. Every figure is the median of {settings['repeats']} "
        "repeats, the engines interleaved, each measurement in a process of its own.",
        "",
        "![throughput and latency](report.png)",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---:|---|",
    ]
    lines += [
        f"| {row['target']} | {row['value']} | {'met' if row['met'] else '**missed**'} |"
        for row in report["targets"]
    ]
    heads = sorted({h for result in engines.values() for h in result["macro_f1"]})
    lines += [
        "",
        "## Engines",
        "",
        "Tickets per second include tokenisation and the calibrated softmax. *One at a time*"
        " is a default pipeline: each ticket on its own, as it arrives. *Best batch* is the"
        f" fastest of batch sizes {settings['batch_sizes']} on the first"
        f" {min(settings['sweep_count'], tickets['count'])} tickets, then timed on all of them."
        " Latency is one ticket alone. Peak memory is the measuring process's maximum"
        " resident set.",
        "",
        "| engine | one at a time (t/s) | best batch | best (t/s) | p50 ms | p95 ms | "
        "peak MiB | load s | GFLOP/s | of peak | " + " | ".join(f"F1 {h}" for h in heads) + " |",
        "|---|" + "---:|" * (9 + len(heads)),
    ]
    for engine, result in engines.items():
        lines.append(
            f"| {NAMES.get(engine, engine)} | {result['single_tickets_per_s']:.1f} | "
            f"{result['best_batch_size']} | {result['best_tickets_per_s']:.1f} | "
            f"{result['single_p50_ms']:.1f} | {result['single_p95_ms']:.1f} | "
            f"{result['peak_rss_mib']:.0f} | {result['load_s']:.1f} | {result['gflops']:.1f} | "
            f"{result['share_of_peak'] * 100:.0f} % | "
            + " | ".join(f"{result['macro_f1'].get(h, float('nan')):.3f}" for h in heads)
            + " |"
        )
    if "pytorch" in engines:
        base_single = engines["pytorch"]["single_tickets_per_s"]
        base_best = engines["pytorch"]["best_tickets_per_s"]
        lines += ["", "Side by side (best batch of each engine):", ""]
        for engine, result in engines.items():
            if engine == "pytorch":
                continue
            lines.append(
                f"- {NAMES.get(engine, engine)}: {result['best_tickets_per_s'] / base_single:.1f}"
                f" x the PyTorch default pipeline, {result['best_tickets_per_s'] / base_best:.2f} x"
                " PyTorch at its best batch size"
            )
    lines += [
        "",
        "Throughput at each batch size (tickets per second):",
        "",
        "| engine | " + " | ".join(str(b) for b in settings["batch_sizes"]) + " |",
        "|---|" + "---:|" * len(settings["batch_sizes"]),
    ]
    for engine, result in engines.items():
        cells = [
            f"{result['sweep_tickets_per_s'].get(b, float('nan')):.1f}"
            for b in settings["batch_sizes"]
        ]
        lines.append(f"| {NAMES.get(engine, engine)} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "## Against the hardware",
        "",
        f"FLOPs per ticket are counted from the encoder's shape ({bundle['encoder']['layers']}"
        f" layers, hidden {bundle['encoder']['hidden_size']}, feed-forward"
        f" {bundle['intermediate_size']}): per layer and token 2 x (4 H² + 2 H I + 2 T H)"
        " for the projections, the feed-forward pair and attention's two T x T products, over"
        " the ticket's real tokens (padding is not counted as work done). Mean"
        f" {tickets['gflop_per_ticket_mean']:.2f} GFLOP per ticket here.",
        "",
        f"- fp32 peak: **{machine['peak_gflops']:.0f} GFLOP/s**, {machine['peak_method']}.",
        "- Measured fp32 GEMMs (2048 x 2048, best of 5) on the same machine: "
        + ", ".join(f"{name} {value:.0f}" for name, value in machine["gemm_gflops"].items())
        + " GFLOP/s; the fastest is the practical ceiling of a tuned kernel.",
    ]
    if "onnx-fp32" in engines:
        fp32 = engines["onnx-fp32"]
        fastest = max(machine["gemm_gflops"].values())
        lines.append(
            f"- ONNX Runtime fp32 at batch {fp32['best_batch_size']}: {fp32['gflops']:.0f} GFLOP/s,"
            f" {fp32['share_of_peak'] * 100:.0f} % of the peak and"
            f" {fp32['gflops'] / fastest * 100:.0f} % of the fastest GEMM."
        )
    if "onnx-int8" in engines:
        lines.append(
            f"- INT8 runs the same network at {engines['onnx-int8']['gflops']:.0f} fp32-equivalent"
            " GFLOP/s (its integer arithmetic is not fp32 work, so it is not held to the fp32"
            " peak)."
        )

    http = report.get("http")
    lines += ["", "## HTTP path", ""]
    if http:
        runtime = engines.get(f"onnx-{http['variant']}")
        lines += [
            f"`python -m service serve` with the {http['variant']} graph (its micro-batcher"
            " groups concurrent requests), with authentication, and every prediction stored"
            " in SQLite as in production. A closed-loop load generator (aiohttp, asyncio) in"
            " another process posts one ticket per `POST /v1/classify` for"
            f" {http['seconds_per_level']:.0f} s per level, after a warm-up; both share the"
            " machine's cores. The server stays up through the run and each round measures"
            " the engines and then these levels, so *of runtime* is the median over the"
            " rounds of each round's requests/s over the same round's runtime tickets/s (best"
            " batch). CPU per request: the server process's (every thread, the model's"
            " included) and the load generator's.",
            "",
            "| concurrency | requests/s | p50 ms | p99 ms | errors | requests | of runtime"
            " | server CPU ms | client CPU ms |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for concurrency, level in sorted(http["levels"].items(), key=lambda kv: int(kv[0])):
            share = (
                f"{level['share_of_runtime'] * 100:.0f} %"
                if runtime and level.get("share_of_runtime") is not None
                else "-"
            )
            lines.append(
                f"| {concurrency} | {level['requests_per_s']:.1f} | {level['p50_ms']:.0f} | "
                f"{level['p99_ms']:.0f} | {level['errors']} | {level['requests']} | {share} | "
                f"{level.get('server_cpu_ms', float('nan')):.1f} | "
                f"{level.get('client_cpu_ms', float('nan')):.2f} |"
            )
    else:
        lines.append("Not run (`--no-http`).")

    ablations = report.get("ablations") or []
    lines += ["", "## Choices measured", ""]
    if ablations:
        lines += [
            "Each choice at batch size 32 on the sweep's tickets (median of the repeats); the"
            " choices that change the numbers also over every ticket: macro-F1 and the share of"
            " predictions equal to the fp32 graph's.",
            "",
            "| choice | option | engine | tickets/s | macro-F1 | = fp32 |",
            "|---|---|---|---:|---|---|",
        ]
        for row in ablations:
            f1 = ", ".join(f"{h} {v:.3f}" for h, v in row.get("macro_f1", {}).items()) or "-"
            agree = (
                ", ".join(
                    f"{h} {v * 100:.1f} %" for h, v in row.get("agreement_with_fp32", {}).items()
                )
                or "-"
            )
            lines.append(
                f"| {row['group']} | {row['choice']} | {row['engine']} | "
                f"{row['tickets_per_s']:.1f} | {f1} | {agree} |"
            )
    else:
        lines.append("Not run (`--no-ablations`).")

    gpu = report["gpu"]
    lines += ["", "## GPU", ""]
    lines.append(
        "The CUDA engines ran above (fp16)." if gpu["ran"] else f"Not run: {gpu['reason']}."
    )
    lines.append("")
    return "\n".join(lines)

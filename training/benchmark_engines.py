"""What one benchmark measurement runs: an engine over the benchmark's tickets.

Each measurement runs in a process of its own (``python -m training.benchmark_engines
SPEC OUTPUT``), so that its peak memory is its own and torch is never loaded beside ONNX
Runtime. An engine is the same fine-tuned network run one way:

- ``pytorch``: the bundle's PyTorch copy (``pytorch/``) in eager mode through
  transformers, as a user without this project would run it: batches in the order the
  tickets come, padded to the longest.
- ``onnx-fp32``, ``onnx-int8``: the bundle's graphs on ONNX Runtime as the service runs
  them: batches of similar length.
- ``pytorch-cuda-fp16``, ``onnx-cuda-fp16``: the same on a CUDA device in half precision.

Every engine turns text into calibrated probabilities the same way (the bundle's
tokenizer, its temperatures), so the timings include tokenisation and post-processing.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.inference.bundle import (
    ModelBundle,
    create_session,
    length_batches,
    pad_id_of,
    pad_token_ids,
    softmax,
)

__all__ = [
    "ENGINES",
    "EngineResult",
    "MeasureSpec",
    "float16_graph",
    "measure_engine",
]

ENGINES = ("pytorch", "onnx-fp32", "onnx-int8", "pytorch-cuda-fp16", "onnx-cuda-fp16")
#: Run a padded batch (input_ids, attention_mask) -> logits per head.
RunBatch = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass
class MeasureSpec:
    """One measurement: which engine, on which tickets, at which batch sizes."""

    engine: str
    model_dir: str
    texts: list[str]
    #: Tickets timed one at a time (the first ``latency_count`` of ``texts``).
    latency_count: int
    #: Tickets of the batch-size sweep (the first ``sweep_count`` of ``texts``).
    sweep_count: int
    batch_sizes: list[int]
    threads: int
    #: ``sorted`` (batches of similar length), ``arrival`` (in the given order), or empty for
    #: the engine's own way (ONNX sorted as the service does, PyTorch in arrival order).
    batching: str = ""
    #: An ONNX file to run instead of the bundle's graph of the engine's precision.
    graph: str | None = None
    #: ONNX Runtime graph optimisation level: ``all``, ``extended``, ``basic`` or ``none``.
    optimisation: str = "all"
    #: Token cap in place of the bundle's ``max_length``.
    max_length: int | None = None
    #: Skip the full pass at the best batch size (ablations use the sweep alone).
    full_pass: bool = True
    #: A folder for files the measurement makes (the fp16 graph).
    scratch: str = ""


@dataclass
class EngineResult:
    engine: str
    load_s: float
    single_latency_ms: list[float]
    single_tickets_per_s: float
    sweep_tickets_per_s: dict[int, float]
    best_batch_size: int
    best_tickets_per_s: float
    peak_rss_mib: float
    predictions: dict[str, list[int]] = field(default_factory=dict)
    single_predictions: dict[str, list[int]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def _onnx_runner(spec: MeasureSpec, bundle: ModelBundle) -> tuple[RunBatch, str, dict[str, Any]]:
    cuda = spec.engine == "onnx-cuda-fp16"
    variant = "int8" if spec.engine == "onnx-int8" else "fp32"
    path = Path(spec.graph) if spec.graph else bundle.model_path(variant)
    if cuda:
        path = float16_graph(path, Path(spec.scratch) / f"{path.stem}.fp16.onnx")
    session, _ = create_session(
        path, "cuda" if cuda else "cpu", spec.threads or None, spec.optimisation
    )
    names = [o.name for o in session.get_outputs()]
    heads = list(bundle.heads)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        named = dict(zip(names, outputs, strict=True))
        return {h: np.asarray(named[f"logits_{h}"], dtype=np.float32) for h in heads}

    details = {"graph": path.name, "provider": session.get_providers()[0]}
    return run, "sorted", details


def float16_graph(source: Path, target: Path) -> Path:
    """The fp32 graph in half precision for CUDA, inputs and outputs kept as they are;
    ONNX Runtime's transformer tools convert its fused operators too."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    if not target.is_file():
        model = OnnxModel(onnx.load(str(source)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(target))
    return target


def _torch_runner(spec: MeasureSpec, bundle: ModelBundle) -> tuple[RunBatch, str, dict[str, Any]]:
    import torch

    from training.reference import load_reference

    torch.set_num_threads(spec.threads or os.cpu_count() or 1)
    model = load_reference(spec.model_dir)
    cuda = spec.engine == "pytorch-cuda-fp16"
    if cuda:
        model = model.half().cuda()
    device = "cuda" if cuda else "cpu"

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outputs = model(
                torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device)
            )
        return {
            head: out.float().cpu().numpy()
            for head, out in zip(model.head_names, outputs[:-1], strict=True)
        }

    details = {
        "attention": str(model.encoder.config._attn_implementation),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return run, "arrival", details


def _batches(ids: Sequence[Sequence[int]], batch_size: int, batching: str) -> list[np.ndarray]:
    if batching == "sorted":
        return list(length_batches(ids, batch_size))
    positions = np.arange(len(ids))
    return [positions[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def measure_engine(spec: MeasureSpec) -> EngineResult:
    """Load the engine, time single tickets and batch sizes, and predict every ticket."""
    bundle = ModelBundle.load(spec.model_dir)
    tokenizer = bundle.tokenizer()
    tokenizer.enable_truncation(spec.max_length or bundle.max_length)
    pad_id = pad_id_of(tokenizer)
    heads = list(bundle.heads)

    started = time.perf_counter()
    runner = _torch_runner if spec.engine.startswith("pytorch") else _onnx_runner
    run, default_batching, details = runner(spec, bundle)
    load_s = time.perf_counter() - started
    batching = spec.batching or default_batching

    def classify(texts: Sequence[str], batch_size: int) -> dict[str, np.ndarray]:
        """Text -> predicted class per head, the whole path (calibrated softmax included)."""
        ids = [e.ids for e in tokenizer.encode_batch(list(texts))]
        predicted = {h: np.zeros(len(ids), dtype=np.int64) for h in heads}
        for positions in _batches(ids, batch_size, batching):
            input_ids, mask = pad_token_ids([ids[p] for p in positions], pad_id)
            logits = run(input_ids, mask)
            for head in heads:
                probabilities = softmax(logits[head], bundle.temperatures[head])
                predicted[head][positions] = probabilities.argmax(axis=1)
        return predicted

    # Warm-up: first runs allocate arenas and pick kernels.
    classify(spec.texts[:8], 8)
    classify(spec.texts[:1], 1)

    latencies: list[float] = []
    single: dict[str, list[int]] = {h: [] for h in heads}
    for text in spec.texts[: spec.latency_count]:
        tick = time.perf_counter()
        predicted = classify([text], 1)
        latencies.append((time.perf_counter() - tick) * 1000)
        for head in heads:
            single[head].append(int(predicted[head][0]))

    sweep = {}
    subset = spec.texts[: spec.sweep_count]
    for batch_size in spec.batch_sizes:
        tick = time.perf_counter()
        classify(subset, batch_size)
        sweep[batch_size] = len(subset) / (time.perf_counter() - tick)
    best = max(sweep, key=lambda size: sweep[size])

    predictions: dict[str, list[int]] = {}
    best_rate = sweep[best]
    if spec.full_pass:
        tick = time.perf_counter()
        predicted = classify(spec.texts, best)
        best_rate = len(spec.texts) / (time.perf_counter() - tick)
        predictions = {h: v.tolist() for h, v in predicted.items()}

    return EngineResult(
        engine=spec.engine,
        load_s=load_s,
        single_latency_ms=latencies,
        single_tickets_per_s=len(latencies) / (sum(latencies) / 1000) if latencies else 0.0,
        sweep_tickets_per_s=sweep,
        best_batch_size=best,
        best_tickets_per_s=best_rate,
        # ru_maxrss is in KiB on Linux
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        predictions=predictions,
        single_predictions=single,
        details={**details, "batching": batching},
    )


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 2:
        sys.stderr.write("usage: python -m training.benchmark_engines SPEC.json OUTPUT.json\n")
        return 2
    spec = MeasureSpec(**json.loads(Path(arguments[0]).read_text(encoding="utf-8")))
    result = measure_engine(spec)
    Path(arguments[1]).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

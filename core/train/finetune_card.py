"""MODEL_CARD.md of a fine-tuned model, from the summary ``finetune`` writes to finetune.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _defaults_lines(summary: dict[str, Any]) -> list[str]:
    """Options the user left unset that took the starting model's default, and where it came from."""
    taken = summary.get("model_defaults") or {}
    return [*(f"- {k} {v:g}: the starting model's default, {source}." for k, (v, source) in taken.items()),
            ""] if taken else []


def model_card(summary: dict[str, Any]) -> str:
    o = summary["options"]
    lines = [
        f"# Fine-tuned model: {Path(summary['model_dir']).name}",
        "",
        f"Contrastive fine-tuning (open_clip ClipLoss) of `{summary['base_model']}` "
        f"(`{summary['base_identity']}`) on the train split of `{summary['data_dir']}` "
        f"({summary['train_frames']} frames; captions: the schema's compressed caption"
        f"{', paraphrased' if o['paraphrase'] else ''}).",
        "",
        "## Hyper-parameters",
        "",
        "| option | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in o.items()],
        f"| resolved batch size | {summary['batch_size']} |",
        f"| resolved precision | {summary['precision']} |",
        "",
        *_defaults_lines(summary),
        "## Metrics (val split, k-NN vote macro F1)",
        "",
        f"- before: {_fmt(summary['val_f1_before'])}",
        f"- after: {_fmt(summary['val_f1_after'])}",
    ]
    if summary.get("wise_alpha") is not None:
        lines.append(f"- WiSE-FT alpha: {summary['wise_alpha']} (scores {summary['wise_scores']})")
    lines += ["", "| epoch | loss | val macro F1 | seconds |", "|---|---|---|---|"]
    for row in summary["log"]:
        lines.append(f"| {row['epoch']} | {row['loss']:.4f} | {_fmt(row.get('val_f1'))} | {row['seconds']:.1f} |")
    lines += [
        "",
        f"Seed {o['seed']}; {summary['train_seconds']:.0f} s of training at "
        f"{summary['images_per_s']:.1f} images/s on {summary['machine']}; "
        f"peak RSS {summary['peak_rss_mb']:.0f} MB; torch {summary['torch']}, open_clip {summary['open_clip']}.",
        "",
    ]
    return "\n".join(lines)

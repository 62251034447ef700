"""The before/after table of an adaptation run: the target footage's familiarity and votes
against an index of labelled frames, and the adapted model's card."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.data import Dataset

if TYPE_CHECKING:
    from core.index import IndexStore


def reference_store(dataset: Dataset, embeddings: np.ndarray, identity: str):  # noqa: ANN201
    """An in-memory index of the labelled frames embedded by one model: what the target's
    familiarity and votes are measured against (calibrated on first use, in memory)."""
    from core.index import IndexStore

    return IndexStore.from_embeddings(embeddings, dataset.frames, model=identity, dataset=dataset.root,
                                      schema=dataset.schema)


def target_report(store: IndexStore, target_embeddings: np.ndarray, k: int = 5,
                  truth: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Familiarity and votes of target frames against ``store``.

    ``votes``: per attribute, the share of frames leaning to each value (the plurality vote,
    shown whether or not it was decided: on footage unlike the index nearly every vote abstains,
    and what it leaned to is what changes); ``decided``: per attribute, the share of frames whose
    vote was decided (a majority agreed and the frame is familiar). With ``truth`` (per frame, the
    labels known for it; may be empty), ``accuracy``: per attribute, the share of labelled frames
    whose plurality vote is the label, and ``labelled``: how many frames each share is over.
    """
    from core.familiarity import calibration_of, is_unfamiliar, judge, median_familiarity
    from core.predict import vote_batch

    votes = judge(store, target_embeddings, vote_batch(store, target_embeddings, k=k))
    calibration = calibration_of(store)
    values = [v.familiarity for v in votes]
    dist: dict[str, dict[str, float]] = {}
    decided: dict[str, float] = {}
    for attr in store.schema.names:
        counts: dict[str, int] = {}
        for v in votes:
            counts[v.attributes[attr].lean] = counts.get(v.attributes[attr].lean, 0) + 1
        dist[attr] = {value: c / len(votes) for value, c in sorted(counts.items(), key=lambda kv: -kv[1])}
        decided[attr] = float(np.mean([not v.attributes[attr].abstained for v in votes]))
    report = {"frames": len(votes), "familiarity_median": median_familiarity(values),
              "flagged_share": float(np.mean([is_unfamiliar(f, calibration) for f in values])),
              "votes": dist, "decided": decided}
    if truth is not None:
        report |= label_accuracy([{a: v.attributes[a].lean for a in store.schema.names} for v in votes], truth)
    return report


def label_accuracy(predicted: list[dict[str, str]], truth: list[dict[str, str]]) -> dict[str, Any]:
    """``accuracy`` per attribute over the frames labelled for it, and ``labelled`` (their count);
    attributes no frame is labelled for are left out."""
    accuracy: dict[str, float] = {}
    labelled: dict[str, int] = {}
    for attr in dict.fromkeys(a for t in truth for a in t):
        hits = [p.get(attr) == t[attr] for p, t in zip(predicted, truth, strict=True) if attr in t]
        accuracy[attr], labelled[attr] = float(np.mean(hits)), len(hits)
    return {"accuracy": accuracy, "labelled": labelled}


@dataclass
class AdaptResult:
    model_dir: Path | None
    model_name: str | None
    identity: str | None = None
    log: list[dict] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # target_report + domain probe + source loss
    after: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir) if self.model_dir else None
        return d


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def before_after_rows(b: dict[str, Any], a: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, before, after) rows of the target-footage table, values as text."""
    rows = [
        ("familiarity (median)", _pct(b["familiarity_median"]), _pct(a.get("familiarity_median"))),
        ("frames flagged unlike the index", _pct(b["flagged_share"]), _pct(a.get("flagged_share"))),
        ("domain probe accuracy (0.5 = indistinguishable)", f"{b['domain_probe']:.3f}",
         f"{a['domain_probe']:.3f}" if "domain_probe" in a else "n/a"),
        ("source contrastive loss", f"{b['source_loss']:.4f}",
         f"{a['source_loss']:.4f}" if "source_loss" in a else "n/a"),
    ]
    return rows + [(f"accuracy: {attr} ({n} labelled frames)", _pct(b["accuracy"][attr]),
                    _pct(a.get("accuracy", {}).get(attr))) for attr, n in b.get("labelled", {}).items()]


def model_card(summary: dict[str, Any]) -> str:
    """MODEL_CARD.md of an adapted model: where it came from and what adaptation changed."""
    b, a, o = summary["before"], summary["after"], summary["options"]
    table = before_after_rows(b, a)
    lines = [
        f"# Adapted model: {Path(summary['model_dir']).name}",
        "",
        f"Domain adaptation of `{summary['base_model']}` (`{summary['base_identity']}`) to unlabelled target "
        f"footage ({summary['target_frames']} frames from {', '.join(f'`{t}`' for t in summary['target'])}), "
        f"with the labelled source task on `{summary['data_dir']}` ({summary['source_frames']} frames): "
        "contrastive + attribute losses, domain-adversarial alignment (gradient reversal) on the pooled "
        "embedding and the patch tokens, and cosine distillation towards the source model on source frames.",
        "",
        f"Identity `{summary['identity']}`; seed {o['seed']}; finished {summary['finished']} "
        f"after {summary['wall_seconds']:.0f} s. Reference index for the table: {summary['reference']}.",
        "",
        "## Hyper-parameters",
        "",
        "| option | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in o.items()],
        "",
        "## Before / after on the target footage",
        "",
        "| measure | before | after |",
        "|---|---|---|",
        *[f"| {m} | {x} | {y} |" for m, x, y in table],
        "",
        "### Votes (share of target frames leaning to each value; decided: share whose vote was decided)",
        "",
        "| attribute | before | after | decided before | decided after |",
        "|---|---|---|---|---|",
    ]

    def dist(d: dict[str, float]) -> str:
        return ", ".join(f"{v} {100 * s:.0f}%" for v, s in d.items())

    for attr in b["votes"]:
        lines.append(f"| {attr} | {dist(b['votes'][attr])} | {dist(a['votes'].get(attr, {}))} | "
                     f"{_pct(b['decided'].get(attr))} | {_pct(a['decided'].get(attr))} |")
    lines += ["", "## Training log", "", "| epoch | loss | task | distill | domain acc (pooled) | "
              "domain acc (tokens) | lambda | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in summary["log"]:
        lines.append(f"| {r['epoch']} | {r['loss']:.4f} | {r['task']:.4f} | {r['distill']:.4f} | "
                     f"{r['domain_acc_pooled']:.3f} | {r['domain_acc_tokens']:.3f} | {r['lambda']:.3f} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join([*lines, ""])

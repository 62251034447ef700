"""The DriveLM challenge's metrics, offline: accuracy, language metrics, match F1, final score.

Which metric scores a question is its tag (DriveLM's ``test_eval.json``): 0 exact-match accuracy,
1 GPT score, 2 language metrics, 3 match score. This follows the official evaluation,
``challenge/evaluation.py`` of github.com/OpenDriveLab/DriveLM (read as a reference, not copied):

- accuracy: the answer string equals the ground truth exactly (no normalisation: "D." is not "D");
- language (tag 2): BLEU-1..4, ROUGE-L and CIDEr from the COCO caption code (the official
  evaluation wraps it through ``language_evaluation.CocoEvaluator``), computed here with
  ``pycocoevalcap`` itself on its PTB-tokenised text; METEOR (reported by LaVida Drive) too, though
  the challenge's score does not use it;
- match (tag 3) and the object filter: see ``core.vqa.metrics_match``;
- final score: see :func:`final_scores`. Its GPT-score term needs an LLM judge and cannot be
  computed offline; the report says so and gives a re-weighted score without it, labelled as such.

Language metrics live in ``core.vqa.metrics_language``, the match score and the object filter in
``core.vqa.metrics_match``; their public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.vqa.drivelm_format import (
    GROUPS,
    TAG_ACCURACY,
    TAG_GPT,
    TAG_LANGUAGE,
    TAG_MATCH,
    DriveLMError,
    question_type,
)
from core.vqa.metrics_language import LANGUAGE_KEYS, language_scores, ptb_tokenize
from core.vqa.metrics_match import MATCH_RADIUS_PX, challenge_points, match_f1, match_points, object_filter

# Final score (OpenDriveLab/DriveLM challenge/evaluation.py, __main__): each term normalised to 0..1,
#   final = 0.4 * GPT/100 + 0.2 * language + 0.2 * match/100 + 0.2 * accuracy,
#   language = (BLEU-1 + BLEU-2 + BLEU-3 + BLEU-4)/4/3 + ROUGE-L/3 + CIDEr/10/3,
#   match = (mean F1 * 100 + GPT score of the tag-3 answers) / 2.
FINAL_WEIGHTS = {"gpt": 0.4, "language": 0.2, "match": 0.2, "accuracy": 0.2}


# ---- accuracy --------------------------------------------------------------------------------
def exact_match(answer: str, truth: str) -> bool:
    return answer == truth


# ---- the report ------------------------------------------------------------------------------
def infer_tags(question: str, truth: str) -> list[int]:
    """Tags for a question that has none, from its form: a lettered or yes/no answer is scored by
    accuracy; any other answer by the language metrics, plus match when the truth names points."""
    if question_type(question, truth) != "free_form":
        return [TAG_ACCURACY]
    return [TAG_LANGUAGE, TAG_MATCH] if len(challenge_points(truth)) else [TAG_LANGUAGE]


def _items(entries: Sequence[Mapping[str, Any]], qa: pd.DataFrame | None) -> tuple[list[dict[str, Any]], int]:
    """One record per scored question (id, question, truth, answer, tags, tags_given, group, type)
    and the number of predictions the QA table has no question for."""
    items: list[dict[str, Any]] = []
    if qa is not None:
        # As the official evaluation: walk the questions file; every question needs a prediction.
        by_id = {e["id"]: e for e in entries}
        missing = [i for i in qa["id"] if i not in by_id]
        if missing:
            raise DriveLMError(f"no prediction for {len(missing)} of {len(qa)} questions, e.g. {missing[0]}")
        for rec in qa.to_dict("records"):
            e = by_id[rec["id"]]
            tags = rec["tag"] if isinstance(rec["tag"], list) else e.get("tag")
            items.append({"id": rec["id"], "question": rec["question"], "truth": rec["answer"],
                          "answer": e["answer"], "tags": tags, "group": rec["group"], "type": rec["type"]})
        extra = len(set(by_id) - set(qa["id"]))
    else:
        for n, e in enumerate(entries):
            if not isinstance(e.get("gt_answer"), str):
                raise DriveLMError(f"entry {n} (id {e['id']}): no 'gt_answer'; give the questions' answers "
                                   "(--qa FILE: the DriveLM QA file with answers and tags)")
            question = e.get("question") or ""
            items.append({"id": e["id"], "question": question, "truth": e["gt_answer"], "answer": e["answer"],
                          "tags": e.get("tag"), "group": e.get("group"),
                          "type": e.get("type") or question_type(question, e["gt_answer"])})
        extra = 0
    for it in items:
        it["tags_given"] = it["tags"] is not None
        if it["tags"] is None:
            it["tags"] = infer_tags(it["question"], it["truth"])
    return items, extra


def _accuracy(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    acc = [exact_match(it["answer"], it["truth"]) for it in items if TAG_ACCURACY in it["tags"]]
    return {"n": len(items), "n_accuracy": len(acc), "accuracy": float(np.mean(acc)) if acc else None}


def language_term(language: Mapping[str, float | None]) -> float | None:
    """The challenge's language score (see FINAL_WEIGHTS): BLEU mean/3 + ROUGE-L/3 + CIDEr/10/3."""
    values = [language.get(k) for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider")]
    if any(v is None for v in values):
        return None
    b1, b2, b3, b4, rouge, cider = (float(v) for v in values)  # type: ignore[arg-type]
    return (b1 + b2 + b3 + b4) / 4 / 3 + rouge / 3 + cider / 10 / 3


def final_scores(accuracy: float | None, language: Mapping[str, float | None], match_f1_mean: float | None,
                 gpt: float | None = None, gpt_match: float | None = None) -> dict[str, Any]:
    """The challenge's final score when every term is known (``gpt`` and ``gpt_match`` on 0..100),
    and the offline score: its weights renormalised over the terms computable here, with the match
    term as F1 alone. The offline score is not comparable with the challenge leaderboard."""
    lang = language_term(language)
    final = None
    if accuracy is not None and lang is not None and match_f1_mean is not None and gpt is not None \
            and gpt_match is not None:
        match = (match_f1_mean * 100 + gpt_match) / 2
        final = (FINAL_WEIGHTS["gpt"] * gpt / 100 + FINAL_WEIGHTS["language"] * lang
                 + FINAL_WEIGHTS["match"] * match / 100 + FINAL_WEIGHTS["accuracy"] * accuracy)
    terms = {"language": lang, "match": match_f1_mean, "accuracy": accuracy}
    known = {k: v for k, v in terms.items() if v is not None}
    total = sum(FINAL_WEIGHTS[k] for k in known)
    weights = {k: FINAL_WEIGHTS[k] / total for k in known}
    value = sum(weights[k] * v for k, v in known.items()) if known else None
    return {
        "final_score": final,
        "final_score_without_gpt": {
            "value": value, "weights": weights, "terms": terms,
            "label": "re-weighted without the GPT score (not the DriveLM challenge's final score)",
        },
    }


def score_predictions(
    entries: Sequence[Mapping[str, Any]],
    qa: pd.DataFrame | None = None,
    *,
    challenge_filter: bool = True,
    meteor: Any = True,
) -> dict[str, Any]:
    """Score DriveLM-style predictions (``read_predictions``) as the challenge does.

    With ``qa`` (the QA table of a tagged questions file such as ``test_eval.json``), the questions,
    ground truths, groups and tags come from it and every question needs a prediction; else from the
    entries (``gt_answer`` required; ``tag``, ``group``, ``type`` optional). Untagged questions get
    :func:`infer_tags`. ``meteor``: as in :func:`language_scores`. Returns the ``eval-vqa`` report
    (docs/CONTRACTS.md).
    """
    items, extra = _items(entries, qa)
    keep = object_filter(items) if challenge_filter else [True] * len(items)
    scored = [it for it, k in zip(items, keep, strict=True) if k]
    acc = _accuracy(scored)
    by_group = {g: _accuracy([it for it in scored if it["group"] == g]) for g in GROUPS}
    types = sorted({str(it["type"]) for it in scored})
    by_type = {t: _accuracy([it for it in scored if it["type"] == t]) for t in types}
    lang_items = [it for it in scored if TAG_LANGUAGE in it["tags"]]
    language: dict[str, Any] = language_scores([it["answer"] for it in lang_items],
                                               [it["truth"] for it in lang_items], meteor=meteor)
    language["n"] = len(lang_items)
    f1s = [match_f1(it["answer"], it["truth"]) for it in scored if TAG_MATCH in it["tags"]]
    match = float(np.mean(f1s)) if f1s else None
    n_gpt = sum(TAG_GPT in it["tags"] for it in scored)
    notes = ["gpt_score is not computed: the challenge's GPT score needs an LLM judge (ChatGPT), "
             "which is not available offline; final_score is therefore null and "
             "final_score_without_gpt re-weights the other terms"]
    if not all(it["tags_given"] for it in items):
        notes.append("questions without a tag were tagged by the form of their answer (infer_tags)")
    if all(it["group"] is None for it in items):
        notes.append("no groups: pass the DriveLM QA file (--qa) or give each prediction a 'group'")
    return {
        "n": len(items),
        "scored": len(scored),
        "filtered_out": len(items) - len(scored),
        "unmatched_predictions": extra,
        "tags": {"given": sum(it["tags_given"] for it in items),
                 "inferred": sum(not it["tags_given"] for it in items)},
        "accuracy": acc["accuracy"],
        "n_accuracy": acc["n_accuracy"],
        "by_group": by_group,
        "by_type": by_type,
        "language": language,
        "match_f1": match,
        "n_match": len(f1s),
        "gpt_score": None,
        "n_gpt": n_gpt,
        **final_scores(acc["accuracy"], language, match),
        "notes": notes,
    }


def _fmt(v: object) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def report_text(report: Mapping[str, Any]) -> str:
    """A short human-readable form of :func:`score_predictions`'s report."""
    lang = report["language"]
    off = report["final_score_without_gpt"]
    lines = [
        f"questions: {report['n']} (scored {report['scored']}, left out by the object filter "
        f"{report['filtered_out']})",
        f"accuracy (tag 0, exact match): {_fmt(report['accuracy'])} over {report['n_accuracy']}",
        *(f"  {g}: {_fmt(v['accuracy'])} over {v['n_accuracy']}" for g, v in report["by_group"].items()
          if v["n"]),
        "by type: " + ", ".join(f"{t} {_fmt(v['accuracy'])} ({v['n_accuracy']})"
                                for t, v in report["by_type"].items()),
        f"language (tag 2, {lang['n']} answers): "
        + ", ".join(f"{k} {_fmt(lang[k])}" for k in LANGUAGE_KEYS),
        f"match F1 (tag 3): {_fmt(report['match_f1'])} over {report['n_match']}",
        f"GPT score (tag 1, {report['n_gpt']} questions): not computed offline (needs an LLM judge)",
        f"final score: n/a; {off['label']}: {_fmt(off['value'])} "
        + "(" + ", ".join(f"{k} x{w:.3f}" for k, w in off["weights"].items()) + ")",
    ]
    return "\n".join(lines)


__all__ = [
    "FINAL_WEIGHTS", "LANGUAGE_KEYS", "MATCH_RADIUS_PX", "challenge_points", "exact_match", "final_scores",
    "infer_tags", "language_scores", "language_term", "match_f1", "match_points", "object_filter",
    "ptb_tokenize", "report_text", "score_predictions",
]

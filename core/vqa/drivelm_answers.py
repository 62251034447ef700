"""DriveLM answers: the challenge's output file, and predictions files for ``scenescope eval-vqa``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.atomic import atomic_write_text
from core.vqa.drivelm_format import GROUPS, DriveLMError, as_mapping, load_json, parse_tags


def _answers_by_id(qa: pd.DataFrame, answers: Mapping[str, str]) -> list[str]:
    ids = qa["id"].tolist()
    missing = [i for i in ids if i not in answers]
    if missing:
        raise DriveLMError(f"no answer for {len(missing)} question(s), e.g. {missing[0]}")
    extra = sorted(set(answers) - set(ids))
    if extra:
        raise DriveLMError(f"{len(extra)} answer(s) for questions not in the QA table, e.g. {extra[0]}")
    bad = [i for i in ids if not isinstance(answers[i], str)]
    if bad:
        raise DriveLMError(f"answer for {bad[0]} is not text")
    return [answers[i] for i in ids]


def export_answers(qa: pd.DataFrame, answers: Mapping[str, str]) -> list[dict[str, str]]:
    """The challenge's output format: ``[{id, question, answer}]`` in the QA table's order.

    Every question needs an answer and every answer a question. ``question`` is the file's own
    question (the baseline's ``output.json`` adds LLaMA-Adapter's ``"<image>\\n"`` prompt prefix; the
    evaluation reads only ``id`` and ``answer``).
    """
    texts = _answers_by_id(qa, answers)
    return [{"id": i, "question": q, "answer": a}
            for i, q, a in zip(qa["id"], qa["question"], texts, strict=True)]


def to_predictions(qa: pd.DataFrame, answers: Mapping[str, str]) -> list[dict[str, Any]]:
    """A predictions list for ``scenescope eval-vqa``: ``{id, question, gt_answer, answer, group,
    type, tag?}`` (tag only where the QA table has one)."""
    texts = _answers_by_id(qa, answers)
    out = []
    for rec, a in zip(qa.to_dict("records"), texts, strict=True):
        p = {"id": rec["id"], "question": rec["question"], "gt_answer": rec["answer"], "answer": a,
             "group": rec["group"], "type": rec["type"]}
        if isinstance(rec["tag"], list):
            p["tag"] = rec["tag"]
        out.append(p)
    return out


def write_answers(path: str | Path, items: Sequence[Mapping[str, Any]]) -> Path:
    """Write an answers or predictions list as JSON, atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(list(map(dict, items)), indent=2, ensure_ascii=False) + "\n")
    return path


PREDICTION_KEYS = ("id", "answer")  # required; question, gt_answer, tag, group, type are optional


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """A DriveLM-style answers/predictions file: a JSON list of ``{id, answer, question?, gt_answer?,
    tag?, group?, type?}``, checked entry by entry (errors name the file and entry number)."""
    path = Path(path)
    items = load_json(path)
    if not isinstance(items, list):
        raise DriveLMError(f"{path}: expected a JSON list of answers, got {type(items).__name__}")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(items):
        where = f"{path} entry {n}"
        e = dict(as_mapping(item, where, "an answer"))
        for k in PREDICTION_KEYS:
            if not isinstance(e.get(k), str):
                raise DriveLMError(f"{where}: {k!r} must be text")
        where = f"{where} (id {e['id']})"
        if e["id"] in seen:
            raise DriveLMError(f"{where}: duplicate id (first at entry {seen[e['id']]})")
        seen[e["id"]] = n
        for k in ("question", "gt_answer", "group", "type"):
            if k in e and e[k] is not None and not isinstance(e[k], str):
                raise DriveLMError(f"{where}: {k!r} must be text")
        if e.get("group") is not None and e["group"] not in GROUPS:
            raise DriveLMError(f"{where}: unknown group {e['group']!r} (one of {list(GROUPS)})")
        e["tag"] = parse_tags(e.get("tag"), where)
        out.append(e)
    return out


__all__ = ["PREDICTION_KEYS", "export_answers", "read_predictions", "to_predictions", "write_answers"]

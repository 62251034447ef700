"""Important-objects questions (DriveLM's "What are the important objects ...", tag 3): the challenge's
match F1 of object positions and a kind-level F1, per answerer. Run as ``bench/vqa.py --parts objects``.

A held-out world is rendered with its object annotations (``scenescope synth --qa --objects``, fresh
seed), and every single scene's object question is asked:
- retrieval: ``core.vqa.evaluate.answer_dataset`` voting with the index (``indexes/demo``); its voters'
  annotations come from the index's dataset, annotated here once (``core.synth.dataset.dataset_objects``,
  cached under the work folder, not written into the dataset). It names kinds, never positions.
- VLM: ``core.vqa.evaluate.answer_dataset_vlm`` with the bundled VLM (25% of tokens kept); it was not
  trained on object questions.
- prior: one constant answer for every question, the kinds shown by more than half of the index's
  frames (what retrieval says with no image: the baseline its neighbour vote must beat);
- truth: the ground-truth answers themselves (match F1 = 1 checks the scoring path end to end).

Kind F1: per question, the F1 of the object kinds an answer names against those of the truth (the
schema's class phrases, whole words), averaged; a no-definite-answer counts as naming none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np


def _kinds(schema: Any, text: str) -> set[str]:
    phrases = schema.qa.objects.classes
    return {c for c, p in phrases.items() if re.search(rf"\b{re.escape(p)}\b", text)}


def kind_f1(schema: Any, answer: str, truth: str) -> float:
    a, t = _kinds(schema, answer), _kinds(schema, truth)
    if not a and not t:
        return 1.0
    tp = len(a & t)
    return 0.0 if tp == 0 else 2 * tp / (len(a) + len(t))


def world(root: Path, work: Path, scenes: int, seed: int) -> tuple[Path, Path, dict[str, dict[str, Any]]]:
    """The held-out world with annotations, and its object questions (as a qa.jsonl) by id."""
    from core.synth import write_synth_dataset

    data = work / f"data-objects-s{seed}-{scenes}"
    if not (data / "qa.jsonl").is_file():
        write_synth_dataset(data, scenes=scenes, clips=0, seed=seed, qa=True, objects=True)
    rows = [json.loads(x) for x in (data / "qa.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if (r.get("intent") or {}).get("kind") == "objects"]
    out = work / "sample-objects"
    out.mkdir(parents=True, exist_ok=True)
    (out / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, out / "qa.jsonl", {r["id"]: r for r in rows}


def index_objects(store: Any, work: Path) -> dict[str, dict[str, Any]]:
    """The index dataset's annotations (computed once, cached in the work folder)."""
    from core.synth.dataset import dataset_objects

    cache = work / f"index-objects-{Path(store.data_root).name}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    objs = dataset_objects(store.data_root, progress=True)
    cache.write_text(json.dumps(objs))
    return objs


def summary(schema: Any, qa: Any, answers: dict[str, Any], raw: dict[str, dict[str, Any]], seconds: float) -> dict:
    from core.vqa.evaluate import prediction_text, score_answers

    rows = qa.to_dict("records")
    said = {r["id"]: prediction_text(answers[r["id"]], r) for r in rows}
    report = score_answers(qa, answers, meteor=False)
    return {"n": len(rows), "match_f1": report["match_f1"], "n_match": report["n_match"],
            "kind_f1": float(np.mean([kind_f1(schema, said[i], raw[i]["answer"]) for i in said])),
            "no_definite_answer": report["no_definite_answer"],
            "with_positions": sum(bool(re.search(r"<c\d+,", t)) for t in said.values()),
            "example": said[rows[0]["id"]], "wall_s": seconds}


def run(a: Any, root: Path, report: dict[str, Any]) -> None:
    """Fill ``report['objects']`` (see the module docstring)."""
    import time

    import torch

    from core.pipeline import open_index
    from core.schema import default_schema
    from core.vqa.answer import Answer
    from core.vqa.drivelm import read_qa_table
    from core.vqa.evaluate import answer_dataset, answer_dataset_vlm

    schema = default_schema()
    work = root / a.work
    data, qa_path, raw = world(root, work, a.object_scenes, a.seed)
    qa = read_qa_table(qa_path)
    out: dict[str, Any] = {"data": str(data.relative_to(root)), "questions": len(qa),
                           "objects_per_answer": float(np.mean([len(re.findall(r"<c\d+,", r["answer"]))
                                                                for r in raw.values()]))}
    truth = {i: Answer(r["answer"], 1.0) for i, r in raw.items()}
    out["truth"] = summary(schema, qa, truth, raw, 0.0)
    model, store = open_index(root / a.index)
    objs = index_objects(store, work)
    from core.vqa.answer_objects import MAJORITY, objects_text
    from core.vqa.question_objects import important_objects

    shown = [{o["class"] for o in important_objects(schema, v["objects"], v["size"])} for v in objs.values()]
    common = [c for c in schema.qa.objects.classes if sum(c in x for x in shown) / len(shown) > MAJORITY]
    out["prior"] = summary(schema, qa, {i: Answer(objects_text(schema, common), 1.0) for i in raw}, raw, 0.0)
    t = time.perf_counter()
    _, ret = answer_dataset(data, model, store, split="all", k=a.k, qa_path=qa_path, objects=objs)
    out["retrieval"] = summary(schema, qa, ret, raw, time.perf_counter() - t)
    print(f"objects, retrieval: {out['retrieval']}", flush=True)
    from core.vqa.vlm_answerer import VLMAnswerer
    from core.vqa.vlm_folder import load_vlm

    torch.set_num_threads(1)
    t = time.perf_counter()
    _, ans = answer_dataset_vlm(data, VLMAnswerer(load_vlm(a.vlm), keep_ratio=0.25), split="all", qa_path=qa_path)
    out["vlm@0.25"] = summary(schema, qa, ans, raw, time.perf_counter() - t)
    out["vlm@0.25"]["leaning"] = next((x.reason for x in ans.values() if x.reason), None)
    print(f"objects, vlm: {out['vlm@0.25']}", flush=True)
    report["objects"] = out


def print_table(r: dict[str, Any]) -> None:
    o = r["objects"]
    names = [n for n in ("truth", "prior", "retrieval", "vlm@0.25") if n in o]
    print(f"\nimportant-objects questions: {o['questions']} ({o['objects_per_answer']:.2f} objects per true answer)")
    print("| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for k in ("match_f1", "kind_f1", "with_positions", "no_definite_answer"):
        print(f"| {k} | " + " | ".join(str(round(o[n][k], 3)) if o[n][k] is not None else "-" for n in names) + " |")


__all__ = ["kind_f1", "print_table", "run"]

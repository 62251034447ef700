"""Does the bundled VLM answer driving questions: perception multiple choice >= 0.92 (place >= 0.85 and above retrieval), planning >= 0.85, 25% of tokens kept <= 2 points lost and >= 1.8x faster, p50 <= 150 ms, load < 3 s (issue 19)? `python bench/vqa.py [--quick]`

Renders a held-out synthetic world with its question bank (``scenescope synth --qa`` with a fresh
seed, never the VLM's training data) and draws a seeded sample of its questions (every split: all
of it is held out). Both answerers answer the same questions:

- retrieval: ``core.vqa.evaluate.answer_dataset`` voting with the demo index (``indexes/demo``, what
  ``scenescope ask`` uses by default) through the project's one scoring path;
- VLM: ``core.vqa.evaluate.answer_dataset_vlm`` with the bundled ``scenescope-vqa-tiny`` (or
  ``--vlm``), each frame embedded once, at 25% and at 100% of its patch tokens kept, in the same run.

Scores come from ``core.vqa.metrics`` (accuracy: exact match on tag-0 questions; BLEU-4, ROUGE-L,
CIDEr by pycocoevalcap on the free-form ones). Match F1 of object positions: ``--parts objects``
(bench/vqa_objects.py: a world rendered with object annotations, its important-objects questions,
both answerers; the main world has none, as the VLM's training world). Speed is process CPU time with one
torch thread (robust to other work on a shared machine); latency is wall time of one short answer
(a yes/no question, free-form generation) about an image whose patch tokens are already computed;
load time is ``load_vlm()`` in a fresh process after its imports.

    .venv/bin/python bench/vqa.py --scenes 600 --clips 32 --questions 2400
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _quick import parse_args  # noqa: E402

from core.vqa.drivelm import read_qa_table  # noqa: E402
from core.vqa.metrics import TAG_ACCURACY, exact_match  # noqa: E402

QUICK = {"scenes": 30, "clips": 3, "questions": 120, "latency": 10, "work": "workspace/bench-vqa-quick",
         "object_scenes": 20}
LATENCY_QUESTION = "Is the road surface wet?"


def render(work: Path, scenes: int, clips: int, seed: int) -> Path:
    """The held-out world (rendered once per size and seed)."""
    from core.synth import write_synth_dataset

    data = work / f"data-s{seed}-{scenes}x{clips}"
    if not (data / "qa.jsonl").is_file():
        write_synth_dataset(data, scenes=scenes, clips=clips, seed=seed, qa=True)
    return data


def sample(data: Path, n: int, seed: int, out: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A seeded sample of ``n`` questions (written as a qa.jsonl) and every sampled row by id: every
    clip question (clips are few and carry the prediction and behavior groups), the rest drawn from
    the single-frame scenes' questions."""
    rows = [json.loads(line) for line in (data / "qa.jsonl").read_text().splitlines() if line.strip()]
    clips = [r for r in rows if r["kind"] == "clip"]
    scenes = [r for r in rows if r["kind"] != "clip"]
    rows = clips + random.Random(seed).sample(scenes, max(0, min(n - len(clips), len(scenes))))
    out.mkdir(parents=True, exist_ok=True)
    (out / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out / "qa.jsonl", {r["id"]: r for r in rows}


def prediction(ans: Any, row: dict[str, Any]) -> str:
    from core.vqa.evaluate import prediction_text

    return prediction_text(ans, row)


def breakdown(qa: Any, answers: dict[str, Any], raw: dict[str, dict[str, Any]], place: str) -> dict[str, Any]:
    """Accuracy (exact match, tag-0 questions) per group, per type, per group x type, and on place
    questions (perception questions whose intent is about the place attribute)."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for r in qa.to_dict("records"):
        if TAG_ACCURACY not in (r["tag"] or []):
            continue
        ok = exact_match(prediction(answers[r["id"]], r), str(r["answer"]))
        intent = raw[r["id"]].get("intent") or {}
        keys = ["all", f"group:{r['group']}", f"type:{r['type']}", f"{r['group']}/{r['type']}"]
        if r["group"] == "perception" and intent.get("attribute") == place:
            keys += ["perception/place", f"perception/place/{r['type']}"]
        for key in keys:
            hits[key].append(ok)
    return {k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(hits.items())}


def timed(fn: Any, *a: Any, **kw: Any) -> tuple[Any, float, float]:
    """(result, process seconds, wall seconds)."""
    c, w = time.process_time(), time.perf_counter()
    out = fn(*a, **kw)
    return out, time.process_time() - c, time.perf_counter() - w


def load_seconds(vlm: str | None) -> dict[str, float]:
    """``load_vlm`` in a fresh process: seconds for its imports, and for the load itself."""
    code = (
        "import time, sys; t0 = time.perf_counter(); import torch, transformers, tokenizers, open_clip; "
        "from core.vqa.vlm_folder import load_vlm; t1 = time.perf_counter(); c1 = time.process_time(); "
        f"load_vlm({vlm!r}); print(t1 - t0, time.perf_counter() - t1, time.process_time() - c1)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    imports, load, cpu = map(float, out.stdout.split()[-3:])
    return {"imports_s": imports, "load_s": load, "load_cpu_s": cpu}


def latency(answerer: Any, patches: torch.Tensor, n: int) -> dict[str, float]:
    """p50/p90 wall and CPU ms of one short free-form answer on embedded patch tokens."""
    for _ in range(3):
        answerer.answer_tokens(LATENCY_QUESTION, patches)
    walls, cpus = [], []
    for _ in range(n):
        ans, c, w = timed(answerer.answer_tokens, LATENCY_QUESTION, patches)
        walls.append(w * 1e3)
        cpus.append(c * 1e3)
    return {"p50_ms": statistics.median(walls), "p90_ms": float(np.percentile(walls, 90)),
            "cpu_p50_ms": statistics.median(cpus), "answer": ans.text, "n": n}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seed", type=int, default=2027, help="the held-out world's seed (the VLM trained on 1901)")
    ap.add_argument("--questions", type=int, default=2400, help="questions sampled from the world's bank")
    ap.add_argument("--vlm", default=None, help="VLM folder (default: the bundled scenescope-vqa-tiny)")
    ap.add_argument("--index", default="indexes/demo", help="the retrieval answerer's index")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--latency", type=int, default=100, help="repeats of the latency question")
    ap.add_argument("--work", default="workspace/bench-vqa")
    ap.add_argument("--parts", nargs="+", choices=["retrieval", "vlm", "objects"], default=["retrieval", "vlm"],
                    help="answerers to run now; the other's figures come from the last full run's report.json "
                         "(same data and sample), so the two can run as separate processes; objects: the "
                         "important-objects questions (match F1), both answerers (bench/vqa_objects.py)")
    ap.add_argument("--object-scenes", type=int, default=500, help="scenes of the objects part's world")
    a = parse_args(ap, QUICK, argv)
    torch.set_num_threads(1)
    from core.pipeline import open_index
    from core.schema import default_schema
    from core.vqa.evaluate import answer_dataset, score_answers
    from core.vqa.questions import place_attribute

    work = ROOT / a.work
    schema = default_schema()
    place = place_attribute(schema).name  # type: ignore[union-attr]
    data = render(work, a.scenes, a.clips, a.seed)
    qa_path, raw = sample(data, a.questions, a.seed, work / "sample")
    qa = read_qa_table(qa_path)
    kinds = {(r["kind"], r["scene"]) for r in raw.values()}
    print(f"{len(qa)} questions over {sum(k != 'clip' for k, _ in kinds)} scenes and "
          f"{sum(k == 'clip' for k, _ in kinds)} clips ({data.name})", flush=True)
    report: dict[str, Any] = {"data": str(data.relative_to(ROOT)), "questions": len(qa), "seed": a.seed}
    saved = work / "report.json"
    if "retrieval" in a.parts:
        model, store = open_index(ROOT / a.index)
        (_, ret), cpu, wall = timed(answer_dataset, data, model, store, split="all", k=a.k, qa_path=qa_path)
        report["retrieval"] = {"breakdown": breakdown(qa, ret, raw, place), "report": score_answers(qa, ret),
                               "cpu_s": cpu, "wall_s": wall, "index": a.index}
        print(f"retrieval: {wall:.0f} s", flush=True)
    if "vlm" in a.parts:
        run_vlm(a, report, data, qa, qa_path, raw, place)
    if "objects" in a.parts:
        from vqa_objects import run as run_objects

        run_objects(a, ROOT, report)
    if not a.quick:  # merged with the other part's figures, read now: it may have run alongside
        old = json.loads(saved.read_text()) if saved.is_file() else {}
        if (old.get("data"), old.get("questions")) == (report["data"], report["questions"]):
            report = {**old, **report}
        saved.write_text(json.dumps(report, indent=2, default=str))
    if {"retrieval", "vlm@0.25"} <= set(report):
        print_tables(report)
    if "objects" in report:
        from vqa_objects import print_table

        print_table(report)
    return report


def run_vlm(a: argparse.Namespace, report: dict[str, Any], data: Path, qa: Any, qa_path: Path,
            raw: dict[str, dict[str, Any]], place: str) -> None:
    from core.images import open_image
    from core.schema import default_schema
    from core.vqa.evaluate import answer_dataset_vlm, question_frames, score_answers
    from core.vqa.vlm_answerer import VLMAnswerer
    from core.vqa.vlm_folder import load_vlm

    report["load"] = load_seconds(a.vlm)
    print(f"load: {report['load']}", flush=True)
    vlm = load_vlm(a.vlm)
    schema = default_schema()
    patches: dict[Path, torch.Tensor] = {}
    _, images = question_frames(data, schema, split="all", qa_path=qa_path)
    c = time.process_time()
    for path in dict.fromkeys(images.values()):  # every frame embedded once, shared by both keep ratios
        patches[path] = VLMAnswerer(vlm).patches(open_image(path))
    report["embed_cpu_s"] = time.process_time() - c
    for keep in (0.25, 1.0):
        answerer = VLMAnswerer(vlm, keep_ratio=keep)
        (_, ans), cpu, wall = timed(answer_dataset_vlm, data, answerer, split="all", qa_path=qa_path,
                                    patches=patches)
        report[f"vlm@{keep}"] = {"breakdown": breakdown(qa, ans, raw, place), "report": score_answers(qa, ans),
                                 "cpu_s": cpu, "wall_s": wall, "cpu_ms_per_answer": cpu / len(qa) * 1e3}
        print(f"vlm keep {keep}: {wall:.0f} s", flush=True)
        if not a.quick:  # partial figures survive an interrupted run
            (ROOT / a.work / "report-vlm-partial.json").write_text(json.dumps(report, indent=2, default=str))
    first = next(iter(patches.values()))
    report["latency@0.25"] = latency(VLMAnswerer(vlm, keep_ratio=0.25), first, a.latency)
    report["latency@1.0"] = latency(VLMAnswerer(vlm, keep_ratio=1.0), first, a.latency)


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def print_tables(r: dict[str, Any]) -> None:
    answerers = ["retrieval", "vlm@0.25", "vlm@1.0"]
    keys = sorted({k for n in answerers for k in r[n]["breakdown"]})
    print("\n| accuracy (tag 0) | n | " + " | ".join(answerers) + " |")
    print("|---|---|" + "---|" * len(answerers))
    for k in keys:
        n = r["retrieval"]["breakdown"].get(k, {}).get("n", "-")
        print(f"| {k} | {n} | " + " | ".join(_f(r[a]["breakdown"].get(k, {}).get("accuracy")) for a in answerers) + " |")
    print("\n| free-form | " + " | ".join(answerers) + " |\n|---|" + "---|" * len(answerers))
    for m in ("bleu4", "rouge_l", "cider", "meteor"):
        print(f"| {m} | " + " | ".join(_f(r[a]["report"]["language"].get(m)) for a in answerers) + " |")
    print("| match F1 | " + " | ".join(_f(r[a]["report"].get("match_f1")) for a in answerers) + " |")
    print("| no definite answer | " + " | ".join(_f(r[a]["report"]["no_definite_answer"]) for a in answerers) + " |")
    s25, s100 = r["vlm@0.25"]["cpu_ms_per_answer"], r["vlm@1.0"]["cpu_ms_per_answer"]
    print(f"\nVLM CPU per answer: {s25:.1f} ms at 25% kept, {s100:.1f} ms at 100% ({s100 / s25:.2f}x); "
          f"embedding the frames once: {r['embed_cpu_s']:.1f} s CPU")
    for k in ("latency@0.25", "latency@1.0"):
        lat = r[k]
        print(f"{k}: p50 {lat['p50_ms']:.1f} ms wall (p90 {lat['p90_ms']:.1f}), CPU p50 {lat['cpu_p50_ms']:.1f} ms, "
              f"answer {lat['answer']!r}")
    print(f"load: {r['load']['load_s']:.2f} s wall, {r['load']['load_cpu_s']:.2f} s CPU "
          f"(after {r['load']['imports_s']:.2f} s of imports)")


if __name__ == "__main__":
    main()

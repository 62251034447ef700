"""Does the AFA distilled student beat meanP on text-to-clip R@1 by >= 3 points and come within 2 points of its teacher, with R@1 >= 70 and R@5 >= 95 on >= 500 held-out clips, and moments R1@0.5 >= 0.7 (issue 22)?

Renders a clip dataset once (``core.retrieval.data``; reused when ``--data`` already holds one),
embeds its frames once with the model, trains the AFA student on the train split's train-template
captions, and ranks the test split's clips by their held-out test-template captions (one caption
per clip, the whole test split as the gallery, no two clips sharing an event and context). Reports,
for meanP, the AFA student and the teacher (softmax and max pooling), text-to-clip and clip-to-text
R@1/5/10, MdR, MnR, the time to score every query against the gallery, and moments in the long drives.

    .venv/bin/python bench/clip_retrieval.py                 # 300 train + 500 test clips (a fresh render: ~30 min on 2 shared cores)
    .venv/bin/python bench/clip_retrieval.py --family 5 --seed 2300 --data runs/clip_retrieval_hard   # harder: 5 clips per context
    .venv/bin/python bench/clip_retrieval.py --quick         # a tiny run that checks the script works; writes nothing under bench/
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models import load_model  # noqa: E402
from core.retrieval.clipvec import pad_clips  # noqa: E402
from core.retrieval.data import CLIPS_FILE, frame_vectors, read_clip_dataset, write_clip_dataset  # noqa: E402
from core.retrieval.distill import DistillConfig  # noqa: E402
from core.retrieval.evaluate import clip_scores, evaluate_moments, fit_student  # noqa: E402
from core.retrieval.metrics import retrieval_metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "runs" / "clip_retrieval_bench"), help="clip dataset folder")
    ap.add_argument("--model", default="scenescope-tiny")
    ap.add_argument("--train", type=int, default=300, help="train clips (AFA student)")
    ap.add_argument("--test", type=int, default=500, help="held-out test clips (the gallery)")
    ap.add_argument("--frames", default="5,7", help="frames per clip, a range")
    ap.add_argument("--seed", type=int, default=2200)
    ap.add_argument("--family", type=int, default=1,
                    help="clips per shared context (> 1: a harder gallery where only place and stages differ)")
    ap.add_argument("--epochs", type=int, default=DistillConfig.epochs)
    ap.add_argument("--lr", type=float, default=DistillConfig.lr, help="AFA learning rate")
    ap.add_argument("--batch", type=int, default=DistillConfig.batch, help="AFA batch (in-batch negatives)")
    ap.add_argument("--temperature", type=float, default=DistillConfig.temperature, help="InfoNCE temperature")
    ap.add_argument("--frame-tau", type=float, default=DistillConfig.frame_tau,
                    help="teacher's frame softmax temperature (its pooling and the fine-distillation target)")
    ap.add_argument("--w-fine", type=float, default=DistillConfig.w_fine, help="fine-distillation loss weight")
    ap.add_argument("--w-coarse", type=float, default=DistillConfig.w_coarse, help="coarse-distillation loss weight")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--quick", action="store_true", help="tiny sizes in a temporary folder; checks the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = None
    if a.quick:
        tmp = Path(tempfile.mkdtemp(prefix="scenescope-bench-clips-"))
        a.data, a.train, a.test, a.epochs = str(tmp / "data"), 12, 10, 3
    try:
        run(a)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a: argparse.Namespace) -> None:
    root = Path(a.data)
    lo, hi = (int(x) for x in a.frames.split(","))
    t0 = time.time()
    if not (root / CLIPS_FILE).is_file():
        write_clip_dataset(root, train=a.train, test=a.test, seed=a.seed, frames=(lo, hi), family=a.family)
        print(f"rendered in {time.time() - t0:.0f} s")
    data = read_clip_dataset(root)
    model = load_model(a.model)
    t1 = time.time()
    vectors, cids, fidx = frame_vectors(root, model, progress=True)
    print(f"frame vectors {vectors.shape} in {time.time() - t1:.0f} s (cached after the first run)")
    cfg = DistillConfig(epochs=a.epochs, lr=a.lr, temperature=a.temperature, batch=a.batch, frame_tau=a.frame_tau,
                        w_fine=a.w_fine, w_coarse=a.w_coarse)
    t2 = time.time()
    student = fit_student(root, model, cfg, progress=False)
    print(f"student ready in {time.time() - t2:.1f} s")
    clips = [c for c in data["clips"] if c["split"] == "test"]
    ids = [c["clip_id"] for c in clips]
    frames, mask = pad_clips(vectors, cids, fidx, ids)
    texts = model.embed_texts([c["captions"]["test"][0] for c in clips]).astype(np.float32)
    rows = {}
    for name, method, c in (("meanP", "meanp", cfg), ("AFA student", "afa", cfg),
                            ("teacher (softmax)", "teacher", cfg),
                            ("teacher (max)", "teacher", DistillConfig(teacher_pool="max", frame_tau=a.frame_tau))):
        clip_scores(method, texts[:2], frames, mask, student, c)  # warm-up
        t = time.perf_counter()
        sim = clip_scores(method, texts, frames, mask, student, c)
        ms = 1000 * (time.perf_counter() - t)
        rows[name] = {**retrieval_metrics(sim), "score_ms": ms}
    moments = evaluate_moments(data, "test", vectors, cids, fidx, dict(zip(ids, texts, strict=True)))
    out = {"model": model.identity, "train_clips": sum(c["split"] == "train" for c in data["clips"]),
           "test_clips": len(clips), "frames": int(mask.sum()), "config": cfg.__dict__, "methods": rows,
           "moments": moments}
    print(f"\n{out['test_clips']} test clips ({out['frames']} frames), {out['train_clips']} train clips; "
          f"model {out['model']}; queries: held-out template captions, one per clip\n")
    print("| method | t2v R@1 | R@5 | R@10 | MdR | MnR | v2t R@1 | R@5 | R@10 | score all queries (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        t, v = r["t2v"], r["v2t"]
        print(f"| {name} | {t['r1']:.1f} | {t['r5']:.1f} | {t['r10']:.1f} | {t['mdr']:.1f} | {t['mnr']:.1f} | "
              f"{v['r1']:.1f} | {v['r5']:.1f} | {v['r10']:.1f} | {r['score_ms']:.1f} |")
    if moments:
        print(f"\nmoments: {moments['queries']} queries in {moments['drives']} drives: R1@0.5 {moments['r1_05']:.3f}, "
              f"R1@0.7 {moments['r1_07']:.3f}, mAP {moments['map']:.3f}")
    if a.json and not a.quick:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

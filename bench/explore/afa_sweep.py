"""Exploratory: choose AFA distillation settings (epochs, InfoNCE temperature, loss weights) on a
validation split carved from the TRAIN clips of a clip dataset, never looking at its test split;
then ``bench/clip_retrieval.py --epochs ... --temperature ...`` measures the chosen setting once.

    .venv/bin/python bench/explore/afa_sweep.py --data runs/clip_retrieval_bench --val 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.models import load_model  # noqa: E402
from core.retrieval.clipvec import pad_clips  # noqa: E402
from core.retrieval.data import frame_vectors, read_clip_dataset  # noqa: E402
from core.retrieval.distill import DistillConfig, train_afa  # noqa: E402
from core.retrieval.evaluate import clip_scores  # noqa: E402
from core.retrieval.metrics import retrieval_metrics  # noqa: E402

GRID = [
    {},
    {"epochs": 120},
    {"temperature": 0.02},
    {"temperature": 0.02, "epochs": 120},
    {"temperature": 0.1},
    {"w_coarse": 0.0, "w_fine": 0.0},
    {"w_fine": 3.0},
    {"hidden": 256, "epochs": 120},
    {"lr": 3e-3, "epochs": 80},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/clip_retrieval_bench")
    ap.add_argument("--val", type=int, default=100, help="train clips held out for validation")
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = read_clip_dataset(a.data)
    model = load_model("scenescope-tiny")
    v, cids, fidx = frame_vectors(a.data, model)
    train = [c for c in data["clips"] if c["split"] == "train"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))
    val = [train[i] for i in order[: a.val]]
    fit = [train[i] for i in order[a.val:]]
    f_frames, f_mask = pad_clips(v, cids, fidx, [c["clip_id"] for c in fit])
    k = min(len(c["captions"]["train"]) for c in fit)
    caps = model.embed_texts([t for c in fit for t in c["captions"]["train"][:k]]).astype(np.float32)
    caps = caps.reshape(len(fit), k, -1)
    v_frames, v_mask = pad_clips(v, cids, fidx, [c["clip_id"] for c in val])
    v_text = model.embed_texts([c["captions"]["test"][0] for c in val]).astype(np.float32)
    base = retrieval_metrics(clip_scores("meanp", v_text, v_frames, v_mask))["t2v"]["r1"]
    print(f"validation {len(val)} clips (train templates' clips, test-template captions); meanP R@1 {base:.1f}")
    for g in GRID:
        r1 = []
        for s in range(a.seeds):
            cfg = DistillConfig(seed=s, **g)
            student, _ = train_afa(f_frames, f_mask, caps, cfg)
            r1.append(retrieval_metrics(clip_scores("afa", v_text, v_frames, v_mask, student, cfg))["t2v"]["r1"])
        print(f"{g}: AFA R@1 {np.mean(r1):.1f} ({', '.join(f'{x:.1f}' for x in r1)}), vs meanP {np.mean(r1) - base:+.1f}",
              flush=True)


if __name__ == "__main__":
    main()

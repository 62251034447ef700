"""Evaluate clip retrieval on a clip dataset (``core.retrieval.data``): text<->clip and moments.

Queries are the clips' captions from the held-out ``test`` templates; training (the AFA student)
sees only captions from the ``train`` templates of train-split clips. The gallery is every clip
of the evaluated split, one caption each, no two clips sharing an event, so a hit is unambiguous.

Methods: ``meanp`` (mean of frame vectors), ``afa`` (the distilled student, trained once per
model and cached in ``DIR/students/``) and ``teacher`` (fine-grained frame-text pooling).

Moments: each event clip's caption is looked for inside the long drive holding the clip. Every
frame of the drive is scored by its similarity to the caption, the scores are centred on a
baseline between the drive's median and its best frame, and every window of up to
``MAX_WINDOW_S`` seconds scores the sum of its centred frames (so it grows while frames are
clearly above the drive's usual level); the best windows after non-maximum suppression are
ranked and scored with Moment-DETR's R1@0.5, R1@0.7 and mAP.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.retrieval.clipvec import AFA, meanp, pad_clips, teacher_scores
from core.retrieval.data import frame_vectors, read_clip_dataset
from core.retrieval.distill import DistillConfig, config_dict, load_afa, save_afa, train_afa
from core.retrieval.metrics import moment_metrics, retrieval_metrics, temporal_iou

if TYPE_CHECKING:
    from core.types import SceneModel

METHODS = ("afa", "meanp", "teacher")
SPLITS = ("test", "all")
MAX_WINDOW_S = 6.0
BASELINE = 0.5  # the window baseline: median + BASELINE * (best - median) of the drive's frame scores
NMS_IOU = 0.5
TOP_WINDOWS = 10


def _clips_of(data: dict, split: str) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    clips = [c for c in data["clips"] if split == "all" or c["split"] == split]
    if not clips:
        raise ValueError(f"the clip dataset has no {split} clips")
    return clips


def training_captions(data: dict) -> tuple[list[str], list[list[str]]]:
    """The train-split clips and their captions from the train templates: all that training sees."""
    clips = [c for c in data["clips"] if c["split"] == "train"]
    if not clips:
        raise ValueError("the clip dataset has no train clips to train the AFA student on")
    return [c["clip_id"] for c in clips], [list(c["captions"]["train"]) for c in clips]


def fit_student(root: str | Path, model: SceneModel, cfg: DistillConfig | None = None, *, retrain: bool = False,
                progress: bool = False) -> AFA:
    """The AFA student for ``model`` on this dataset: loaded from ``students/`` if trained with the
    same settings, else trained on the train split (train-template captions only) and saved."""
    cfg = cfg or DistillConfig()
    root = Path(root)
    data = read_clip_dataset(root)
    path = root / "students" / (re.sub(r"[^A-Za-z0-9._-]", "_", model.identity) + ".safetensors")
    ids, caps = training_captions(data)
    meta = {"model": model.identity, "data_seed": data.get("seed"), "train_clips": ids, "config": config_dict(cfg)}
    if path.is_file() and not retrain:
        student, saved = load_afa(path)
        if saved == meta:
            return student
    v, cids, fidx = frame_vectors(root, model, progress=progress)
    frames, mask = pad_clips(v, cids, fidx, ids)
    k = min(len(c) for c in caps)
    text = model.embed_texts([t for c in caps for t in c[:k]]).astype(np.float32).reshape(len(caps), k, -1)
    student, _ = train_afa(frames, mask, text, cfg, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_afa(student, path, meta)
    return student


def clip_scores(method: str, texts: np.ndarray, frames: np.ndarray, mask: np.ndarray,
                student: AFA | None = None, cfg: DistillConfig | None = None) -> np.ndarray:
    """(T, C) caption-clip scores by ``method``."""
    cfg = cfg or DistillConfig()
    t, f, m = torch.from_numpy(texts), torch.from_numpy(frames), torch.from_numpy(mask)
    with torch.no_grad():
        if method == "meanp":
            return (t @ meanp(f, m).T).numpy()
        if method == "afa":
            if student is None:
                raise ValueError("method afa needs a trained student")
            return (t @ student(f, m)[0].T).numpy()
        if method == "teacher":
            return teacher_scores(t, f, m, cfg.teacher_pool, cfg.frame_tau).numpy()
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def propose_windows(times: np.ndarray, scores: np.ndarray, step: float, *, max_window_s: float = MAX_WINDOW_S,
                    baseline: float = BASELINE, top: int = TOP_WINDOWS, nms_iou: float = NMS_IOU) -> np.ndarray:
    """Ranked windows (start, end, score) over one drive's frames (``times`` ascending, each frame
    lasting ``step`` seconds): every run of up to ``max_window_s`` seconds scores the sum of its
    frames' scores minus a baseline between the median and the best; greedy NMS keeps ``top``."""
    s = np.asarray(scores, np.float64)
    med = float(np.median(s))
    c = s - (med + baseline * (float(s.max()) - med))
    csum = np.concatenate([[0.0], np.cumsum(c)])
    longest = max(1, int(round(max_window_s / step)))
    cand = [(float(times[i]), float(times[j - 1]) + step, float(csum[j] - csum[i]))
            for i in range(len(s)) for j in range(i + 1, min(len(s), i + longest) + 1)]
    cand.sort(key=lambda w: -w[2])
    kept: list[tuple[float, float, float]] = []
    for w in cand:
        if all(temporal_iou(np.array(w[:2]), np.array(k[:2]))[0, 0] < nms_iou for k in kept):
            kept.append(w)
            if len(kept) == top:
                break
    return np.array(kept, np.float64).reshape(-1, 3)


def evaluate_moments(data: dict, split: str, vectors: np.ndarray, clip_ids: list[str], frame_index: list[int],
                     texts: dict[str, np.ndarray], **window_args: float) -> dict | None:
    """Moment retrieval over the split's long drives; None when it has none."""
    drives = [d for d in data.get("drives", []) if split == "all" or d["split"] == split]
    if not drives:
        return None
    row = {(c, int(i)): r for r, (c, i) in enumerate(zip(clip_ids, frame_index, strict=True))}
    step = 1.0 / float(data["fps"])
    preds, truth = [], []
    for d in drives:
        rows = [row[(f["clip_id"], int(f["frame_index"]))] for f in d["frames"]]
        times = np.array([f["t"] for f in d["frames"]], np.float64)
        fv = vectors[rows]
        for ev in d["events"]:
            preds.append(propose_windows(times, fv @ texts[ev["clip_id"]], step, **window_args))
            truth.append(np.array([[ev["start_s"], ev["end_s"]]]))
    out = moment_metrics(preds, truth)
    return {**out, "drives": len(drives), "queries": len(truth)}


def evaluate_retrieval(root: str | Path, model: SceneModel, *, split: str = "test", method: str = "afa",
                       cfg: DistillConfig | None = None, moments: bool = True, progress: bool = False) -> dict:
    """The ``eval-retrieval`` report: ``t2v``/``v2t`` {r1, r5, r10, mdr, mnr} and ``moments``
    {r1_05, r1_07, map, drives, queries} (None without drives), with what was measured."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cfg = cfg or DistillConfig()
    data = read_clip_dataset(root)
    clips = _clips_of(data, split)
    v, cids, fidx = frame_vectors(root, model, progress=progress)
    ids = [c["clip_id"] for c in clips]
    frames, mask = pad_clips(v, cids, fidx, ids)
    captions = [c["captions"]["test"][0] for c in clips]
    texts = model.embed_texts(captions).astype(np.float32)
    student = fit_student(root, model, cfg, progress=progress) if method == "afa" else None
    sim = clip_scores(method, texts, frames, mask, student, cfg)
    report = {"model": model.identity, "method": method, "split": split, "clips": len(clips),
              "captions": "held-out test templates", **retrieval_metrics(sim)}
    report["moments"] = (evaluate_moments(data, split, v, cids, fidx, dict(zip(ids, texts, strict=True)))
                         if moments else None)
    return report


def report_text(r: dict) -> str:
    lines = [f"{r['method']} on {r['clips']} {r['split']} clips ({r['model']}; captions: {r['captions']})"]
    for key, name in (("t2v", "text->clip"), ("v2t", "clip->text")):
        m = r[key]
        lines.append(f"  {name}: R@1 {m['r1']:.1f}  R@5 {m['r5']:.1f}  R@10 {m['r10']:.1f}  "
                     f"MdR {m['mdr']:.1f}  MnR {m['mnr']:.1f}")
    if r.get("moments"):
        m = r["moments"]
        lines.append(f"  moments ({m['queries']} queries in {m['drives']} drives): R1@0.5 {m['r1_05']:.3f}  "
                     f"R1@0.7 {m['r1_07']:.3f}  mAP {m['map']:.3f}")
    return "\n".join(lines)


__all__ = ["METHODS", "SPLITS", "clip_scores", "evaluate_moments", "evaluate_retrieval", "fit_student",
           "propose_windows", "report_text", "training_captions"]

"""Before/after figures of one quantized encoder against its FP32 source, measured in one run:
file size, encoder time per image, text-to-frame R@1/5/10 and k-NN macro F1 (the Model section's
Quantize page; ``bench/quantize.py`` is the full benchmark of every variant).

Data: fresh synthetic frames (seed 9200 by default, unused by training, the model card, the bench
and calibration). R@k: each distinct schema sentence of the query frames is a text query, and
every query frame with exactly those labels is a hit (ties pessimistic, ``core.retrieval``). k-NN
F1: query frames voted by an index of the indexed frames embedded by the same encoder (k=5).

Clip level (``compare_clips``, the issue's measure; ``bench/quantize.py --clips DIR``): a clip
dataset's frames embedded by each encoder, pooled into clip vectors by meanP and the AFA student
exactly as ``eval-retrieval`` pools them, and ranked by text-to-clip R@k through the same metric
function (``core.retrieval.metrics.retrieval_metrics``).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.models import SceneModel, load_model
from core.schema import default_schema

VARIANTS = {  # the page's choices: label -> (bits, method)
    "INT8 RTN (weights)": (8, "rtn"), "INT8 GPTQ (weights)": (8, "gptq"), "INT4 RTN (weights)": (4, "rtn"),
    "INT4 GPTQ (weights)": (4, "gptq"), "INT8 ONNX Runtime (dynamic)": (8, "ort-dynamic"),
    "INT8 ONNX Runtime (static QDQ)": (8, "ort-static"),
}
DATA_SEED = 9200
Progress = Callable[[float, str], None]


@dataclass
class Encoder:
    name: str
    encode: Callable  # preprocessed pixels (B, 3, H, W) -> unit vectors (B, d)
    text_model: SceneModel  # embeds the R@k queries (the text tower is never quantized)
    file_mb: float
    prep_s: float


def render_frames(n: int, seed: int) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` synthetic frames with their labels, places uniform."""
    from core.synth.clips import attribute_with
    from core.synth.render import render_params

    schema = default_schema()
    place = attribute_with(schema, "feature")
    rng = random.Random(seed)
    frames, labels = [], []
    for _ in range(n):
        lab = schema.sample(rng, {place.name: rng.choice(place.value_names)})
        frames.append(render_params(schema.render_params(lab), rng.getrandbits(31), (320, 180)))
        labels.append(lab)
    return frames, labels


def quantized_encoder(source: SceneModel, source_name: str, bits: int, method: str, folder: Path,
                      calibration: int) -> Encoder:
    """Make the quantized encoder (a ``file:`` model, or an ONNX Runtime session) in ``folder``."""
    from core.quant.export import quantize_to_folder, synthetic_frames
    from core.quant.ort import OrtEncoder, export_vision, quantize_int8, quantize_int8_static
    from core.quant.storage import QUANT_WEIGHTS

    t = time.perf_counter()
    if method in ("rtn", "gptq"):
        out = quantize_to_folder(source_name, bits, folder / f"int{bits}-{method}", method=method,
                                 calibration=calibration)
        m = load_model(f"file:{out}")
        return Encoder(m.identity, m.embed_batch, m, (out / QUANT_WEIGHTS).stat().st_size / 1e6,
                       time.perf_counter() - t)
    onnx32 = export_vision(source.clip, source.image_size, folder / "vision.onnx")
    if method == "ort-static":
        pixels = source.preprocess_batch(synthetic_frames(calibration)).numpy()
        path = quantize_int8_static(onnx32, folder / "vision.int8s.onnx", pixels)
    elif method == "ort-dynamic":
        path = quantize_int8(onnx32, folder / "vision.int8.onnx")
    else:
        raise ValueError(f"unknown quantization method {method!r}")
    enc = OrtEncoder(path, threads=1)
    return Encoder(path.name, enc.embed_batch, source, path.stat().st_size / 1e6, time.perf_counter() - t)


def fp32_file_mb(model: SceneModel) -> float:
    """What an FP32 safetensors copy of the model's weights weighs (the bundled file may be fp16):
    4 bytes a number, the header's few kB left out."""
    return sum(4 * v.numel() for v in model.clip.state_dict().values()) / 1e6


def measure(enc: Encoder, idx_px: object, idx_labels: list[dict], q_px: object, q_labels: list[dict],
            batch: int = 32, reps: int = 3) -> dict:
    """One encoder's row: size, CPU ms per image (best of ``reps``), R@1/5/10 and k-NN macro F1."""
    from core.index import IndexStore
    from core.retrieval import rank_metrics, retrieval_ranks
    from core.scoring import score_queries

    schema = default_schema()

    def embed(px: object) -> np.ndarray:
        return np.concatenate([enc.encode(px[i:i + batch]) for i in range(0, len(px), batch)])

    idx, q = embed(idx_px), embed(q_px)
    rows = [{"path": f"f{i}.png", "clip_id": f"f{i}", **lab} for i, lab in enumerate(idx_labels)]
    store = IndexStore.from_embeddings(idx, rows, model=f"compare:{enc.name}", schema=schema)
    f1 = score_queries(store, q, q_labels, k=5)["macro_f1"]
    sentences = [schema.to_sentence(lab) for lab in q_labels]
    texts = sorted(set(sentences))
    relevant = np.array([[s == t for s in sentences] for t in texts])
    r = rank_metrics(retrieval_ranks(enc.text_model.embed_texts(texts) @ q.T, relevant))
    times = []
    for _ in range(reps):  # CPU time: steadier than wall time on a shared machine
        c0 = time.process_time()
        embed(q_px)
        times.append(1e3 * (time.process_time() - c0) / len(q_px))
    return {"variant": enc.name, "file_mb": enc.file_mb, "ms_per_image": min(times), "r1": r["r1"], "r5": r["r5"],
            "r10": r["r10"], "knn_f1": float(f1), "prep_s": enc.prep_s}


CLIP_POOLS = ("meanp", "afa")  # how clip vectors are pooled from frame vectors (core.retrieval.evaluate)


def embed_with(encoders: dict[str, Callable], batches: Iterable[object]) -> dict[str, np.ndarray]:
    """Every encoder's unit vectors for the same preprocessed batches, each batch preprocessed once."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in encoders}
    for px in batches:
        for name, encode in encoders.items():
            v = np.asarray(encode(px), np.float32)
            out[name].append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return {name: np.concatenate(v) for name, v in out.items()}


def clip_recall(vectors: np.ndarray, clip_ids: list[str], frame_index: list[int], order: list[str],
                texts: np.ndarray, student: object) -> dict[str, dict[str, float]]:
    """Text-to-clip {r1, r5, r10, mdr, mnr} per pooling of CLIP_POOLS (meanP alone without a
    student): one encoder's frame vectors pooled into clips as ``eval-retrieval`` pools them,
    caption i's clip being ``order[i]``."""
    from core.retrieval.metrics import retrieval_metrics

    return {p: retrieval_metrics(sim)["t2v"] for p, sim in pooled_scores(vectors, clip_ids, frame_index, order, texts,
                                                                           student).items()}


def pooled_scores(vectors: np.ndarray, clip_ids: list[str], frame_index: list[int], order: list[str],
                  texts: np.ndarray, student: object) -> dict[str, np.ndarray]:
    """{pooling: (captions x clips) similarity matrix} of ``clip_recall`` (caption i's clip is column i)."""
    from core.retrieval.clipvec import pad_clips
    from core.retrieval.evaluate import clip_scores

    frames, mask = pad_clips(vectors, clip_ids, frame_index, order)
    pools = CLIP_POOLS if student is not None else ("meanp",)
    return {p: clip_scores(p, texts, frames, mask, student) for p in pools}


def paired_r1(ranks_a: np.ndarray, ranks_b: np.ndarray, *, resamples: int = 10000, seed: int = 0) -> dict:
    """Is encoder A's R@1 different from B's on the same queries? 0-based ranks of each query's clip.

    Returns both R@1s, their difference (A - B, points), a paired bootstrap 95% interval of it
    (queries resampled, both encoders together), the discordant queries (hit by A only, by B only)
    and the exact two-sided sign test on them (McNemar's exact test); also the sign test on every
    query whose rank differs (A ranks its clip better / worse), which uses all of the ranking.
    """
    from scipy.stats import binomtest, bootstrap

    a, b = np.asarray(ranks_a), np.asarray(ranks_b)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired ranks need two equal 1-D arrays of >= 2 queries, got {a.shape} and {b.shape}")
    diff = 100.0 * ((a == 0).astype(float) - (b == 0))

    def sign_p(k: int, n: int) -> float:
        return float(binomtest(k, n, 0.5).pvalue) if n else 1.0

    lo, hi = (bootstrap((diff,), np.mean, n_resamples=resamples, method="percentile",
                        rng=np.random.default_rng(seed)).confidence_interval if diff.any() else (0.0, 0.0))
    a_only, b_only = int(np.sum((a == 0) & (b > 0))), int(np.sum((b == 0) & (a > 0)))
    better, worse = int(np.sum(a < b)), int(np.sum(a > b))
    return {"r1_a": float(100.0 * np.mean(a == 0)), "r1_b": float(100.0 * np.mean(b == 0)),
            "diff": float(diff.mean()), "ci95": [float(lo), float(hi)], "a_only": a_only, "b_only": b_only,
            "p_sign": sign_p(a_only, a_only + b_only), "rank_better": better, "rank_worse": worse,
            "p_rank": sign_p(better, better + worse)}


def spread_frames(frames: pd.DataFrame, per_clip: int | None) -> pd.DataFrame:
    """At most ``per_clip`` manifest rows of each clip, evenly spread from its first frame to its last
    (so a clip keeps its plain-road ends and the middle of its event); None keeps every frame."""
    if per_clip is None:
        return frames
    if per_clip < 1:
        raise ValueError(f"frames per clip must be at least 1, got {per_clip}")
    keep = []
    for _, g in frames.sort_values(["clip_id", "frame_index"]).groupby("clip_id", sort=False):
        pick = np.unique(np.round(np.linspace(0, len(g) - 1, min(per_clip, len(g)))).astype(int))
        keep.extend(g.index[pick])
    return frames.loc[sorted(keep)].reset_index(drop=True)


def compare_clips(root: str | Path, model: SceneModel, encoders: dict[str, Callable], *, split: str = "test",
                  student: object = None, afa: bool = True, batch: int = 32, frames_per_clip: int | None = None,
                  progress: Progress | None = None) -> dict[str, dict]:
    """Text-to-clip R@k of each encoder on a clip dataset (``core.retrieval.data``): the split's
    frames embedded by every encoder, pooled by meanP and (``afa``) by the AFA ``student`` (default:
    ``model``'s, trained on the FP32 train-split vectors: one student pools every variant, as an
    index pools with the FP32 model's student), and ranked against each clip's held-out caption
    (one a clip, the whole split the gallery). Text
    vectors come from ``model``: the quantizers leave the text tower as it is. ``frames_per_clip``
    thins each clip (``spread_frames``) to bound the CPU time of many encoders.

    Returns {encoder: {"meanp": t2v, "afa": t2v, "vectors": (N, d) frame vectors, "ranks": {pooling:
    0-based rank of each caption's clip}}} (``paired_r1`` compares two encoders' ranks).
    """
    from core.data.manifest import Dataset, read_manifest
    from core.index.build import load_pixels
    from core.index.preprocess import fast_preprocess
    from core.retrieval.data import read_clip_dataset
    from core.retrieval.evaluate import fit_student

    say = progress or (lambda _f, _t: None)
    data = read_clip_dataset(root)
    clips = [c for c in data["clips"] if split == "all" or c["split"] == split]
    ds = read_manifest(root)
    frames = ds.frames if split == "all" else ds.frames[ds.frames["split"] == split].reset_index(drop=True)
    frames = spread_frames(frames, frames_per_clip)
    if not clips or frames.empty:
        raise ValueError(f"{root}: the clip dataset has no {split} clips")
    sub = Dataset(ds.root, frames, ds.schema)
    order = [c["clip_id"] for c in clips]
    texts = model.embed_texts([c["captions"]["test"][0] for c in clips]).astype(np.float32)
    if afa and student is None:
        student = fit_student(root, model)
    elif not afa:
        student = None
    preprocess = fast_preprocess(model)
    bounds = [(s, min(s + batch, len(sub))) for s in range(0, len(sub), batch)]

    def batches() -> Iterable[object]:
        for i, (s, e) in enumerate(bounds):
            say(i / len(bounds), f"Embedding frames {s}-{e} of {len(sub)} with {len(encoders)} encoders…")
            yield load_pixels(sub, preprocess, s, e)

    from core.retrieval.metrics import retrieval_metrics, retrieval_ranks

    vectors = embed_with(encoders, batches())
    cids, fidx = frames["clip_id"].astype(str).tolist(), frames["frame_index"].astype(int).tolist()
    out = {}
    for name, v in vectors.items():
        sims = pooled_scores(v, cids, fidx, order, texts, student)
        out[name] = {**{p: retrieval_metrics(s)["t2v"] for p, s in sims.items()}, "vectors": v,
                     "ranks": {p: retrieval_ranks(s) for p, s in sims.items()}}
    say(1.0, "Done")
    return out


def bundled_student(identity: str) -> object | None:
    """The AFA student an index of this model pools clips with (``assets/clip_students/``), or None."""
    from core.index.clips import student_path
    from core.retrieval.distill import load_afa

    path = student_path(identity)
    if not path.is_file():
        return None
    student, meta = load_afa(path)
    return student if meta.get("model") == identity else None


def clip_figures(model: SceneModel, encoders: dict[str, Callable], folder: Path, clips: int,
                 seed: int) -> dict[str, dict]:
    """{encoder: {"clip_r1": meanP R@1, "clip_r1_afa": AFA R@1 or None}} on ``clips`` fresh clips of 5
    frames (one held-out caption each, all of them the gallery), pooled by the model's bundled student."""
    from core.retrieval.data import write_clip_dataset

    write_clip_dataset(folder, train=0, test=clips, seed=seed, frames=(5, 5))
    student = bundled_student(model.identity)
    out = compare_clips(folder, model, encoders, student=student, afa=student is not None)
    return {n: {"clip_r1": r["meanp"]["r1"], "clip_r1_afa": r["afa"]["r1"] if "afa" in r else None}
            for n, r in out.items()}


def compare_quantized(model_name: str, variant: str, *, index: int = 300, queries: int = 150, calibration: int = 200,
                      clips: int = 0, seed: int = DATA_SEED, progress: Progress | None = None) -> list[dict]:
    """[FP32 row, quantized row] for ``variant`` (a key of ``VARIANTS``) of registry model ``model_name``;
    with ``clips`` > 0 also text-to-clip R@1 on that many fresh clips (``clip_figures``)."""
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    say = progress or (lambda _f, _t: None)
    bits, method = VARIANTS[variant]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-core figures, comparable with ONNX Runtime's one intra-op thread
    try:
        with tempfile.TemporaryDirectory(prefix="scenescope-quant-") as work:
            say(0.05, f"Rendering {index + queries} frames…")
            source = load_model(model_name)
            idx_frames, idx_labels = render_frames(index, seed)
            q_frames, q_labels = render_frames(queries, seed + 1)
            idx_px, q_px = source.preprocess_batch(idx_frames), source.preprocess_batch(q_frames)
            say(0.2, f"Quantizing ({variant})…")
            quant = quantized_encoder(source, model_name, bits, method, Path(work), calibration)
            fp32 = Encoder("FP32", source.embed_batch, source, fp32_file_mb(source), 0.0)
            say(0.6, "Measuring FP32…")
            before = measure(fp32, idx_px, idx_labels, q_px, q_labels)
            say(0.8, f"Measuring {variant}…")
            after = measure(quant, idx_px, idx_labels, q_px, q_labels)
            if clips:
                say(0.9, f"Rendering and ranking {clips} clips…")
                by = clip_figures(source, {"FP32": fp32.encode, variant: quant.encode}, Path(work) / "clips",
                                  clips, seed + 2)
                before.update(by["FP32"])
                after.update(by[variant])
    finally:
        torch.set_num_threads(threads)
    after["variant"] = variant
    after["speedup"] = before["ms_per_image"] / after["ms_per_image"]
    before["speedup"] = 1.0
    say(1.0, "Done")
    return [before, after]


__all__ = ["CLIP_POOLS", "VARIANTS", "bundled_student", "clip_figures", "clip_recall", "compare_clips", "compare_quantized", "embed_with", "measure",
           "paired_r1", "pooled_scores", "quantized_encoder", "render_frames", "spread_frames"]

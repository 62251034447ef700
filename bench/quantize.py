"""What do INT8/INT4 encoders cost and save (issue 22)? `python bench/quantize.py [--quick]`

Targets: INT8 loses at most 1 point of R@1 and the ONNX Runtime path makes the encoder >= 1.5x
faster; INT4 GPTQ loses at most 5 points of R@1 and beats RTN. One run measures, beside FP32:
weight-only INT8/INT4 by RTN and GPTQ (`scenescope quantize`, loaded back through the registry by
file:), and ONNX Runtime's dynamic INT8 encoder. For each: file size (whole file, and the vision
encoder's share), encoder ms/image (wall and CPU, median of interleaved repeats), text-to-frame
R@1/5/10 and k-NN macro F1 (`core.scoring.score_queries`, k=5, an index of the same variant).

Data: fresh synthetic frames (seeds unused by training 7, the model card 1001 and calibration
4242). R@k: each distinct schema sentence of the query frames is a text query; every query frame
with exactly those labels is a correct hit (``core.retrieval.retrieval_ranks``, ties pessimistic).
Clip-level captions and the issue's 500-clip gallery are not built yet, so this is the frame proxy.

    .venv/bin/python bench/quantize.py --index 1500 --queries 500 --calibration 200
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

VARIANTS = [(8, "rtn"), (8, "gptq"), (4, "rtn"), (4, "gptq")]


def tensor_bytes(path: Path, prefix: str = "visual.") -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return sum(f.get_tensor(k).nbytes for k in f.keys() if k.startswith(prefix))


def embed(fn, pixels, batch: int) -> np.ndarray:  # noqa: ANN001
    return np.concatenate([fn(pixels[i:i + batch]) for i in range(0, len(pixels), batch)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="scenescope-tiny")
    ap.add_argument("--index", type=int, default=1500, help="indexed frames (the k-NN voters)")
    ap.add_argument("--queries", type=int, default=500, help="query frames (k-NN and the R@k gallery)")
    ap.add_argument("--calibration", type=int, default=200, help="GPTQ calibration frames")
    ap.add_argument("--seed", type=int, default=9100, help="data seed (index; queries use seed + 1)")
    ap.add_argument("--reps", type=int, default=5, help="interleaved timing repeats")
    ap.add_argument("--timing-images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and ORT threads (1: per-core figures, steadier on a shared machine)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the quantized models and ONNX files")
    ap.add_argument("--speed-only", action="store_true",
                    help="skip the weight-only RTN/GPTQ variants (they run float32 kernels: no speed path)")
    a = parse_args(ap, {"index": 120, "queries": 60, "calibration": 16, "reps": 1, "timing_images": 32}, argv)

    import torch
    from safetensors.torch import save_file

    from core.index import IndexStore
    from core.models import load_model
    from core.quant import QUANT_WEIGHTS
    from core.quant.export import quantize_to_folder, synthetic_frames
    from core.quant.ort import (
        OrtEncoder,
        export_vision,
        quantize_int8,
        quantize_int8_fused,
        quantize_int8_static,
    )
    from core.retrieval import rank_metrics, retrieval_ranks
    from core.schema import default_schema
    from core.scoring import score_queries

    torch.set_num_threads(a.threads)
    schema = default_schema()
    work = Path(tempfile.mkdtemp(prefix="scenescope-bench-quant-"))
    t0 = time.perf_counter()
    from core.quant.compare import render_frames  # the Quantize page's frames, the same for both

    idx_frames, idx_labels = render_frames(a.index, a.seed)
    q_frames, q_labels = render_frames(a.queries, a.seed + 1)
    print(f"rendered {a.index} + {a.queries} frames in {time.perf_counter() - t0:.0f} s")

    fp32 = load_model(a.model)
    idx_px, q_px = fp32.preprocess_batch(idx_frames), fp32.preprocess_batch(q_frames)
    rows = [{"path": f"f{i}.png", "clip_id": f"f{i}", **lab} for i, lab in enumerate(idx_labels)]
    sentences = [schema.to_sentence(lab) for lab in q_labels]
    texts = sorted(set(sentences))
    relevant = np.array([[s == t for s in sentences] for t in texts])

    fp32_file = work / "fp32.safetensors"  # what an FP32 copy of the model weighs
    save_file({k: v.float().contiguous() for k, v in fp32.clip.state_dict().items()}, str(fp32_file))
    variants: dict[str, dict] = {"FP32 (torch)": {
        "model": fp32, "encode": fp32.embed_batch, "file_mb": fp32_file.stat().st_size / 1e6,
        "vision_mb": tensor_bytes(fp32_file) / 1e6, "prep_s": 0.0}}
    for bits, method in ([] if a.speed_only else VARIANTS):
        name = f"INT{bits} {method.upper()}"
        t = time.perf_counter()
        out = quantize_to_folder(a.model, bits, work / name.replace(" ", "-"), method=method,
                                 calibration=a.calibration)
        prep = time.perf_counter() - t
        m = load_model(f"file:{out}")
        variants[name] = {"model": m, "encode": m.embed_batch, "file_mb": (out / QUANT_WEIGHTS).stat().st_size / 1e6,
                          "vision_mb": tensor_bytes(out / QUANT_WEIGHTS) / 1e6, "prep_s": prep}
        print(f"{name}: quantized in {prep:.0f} s ({m.identity})")
    t = time.perf_counter()
    onnx32 = export_vision(fp32.clip, fp32.image_size, work / "vision.onnx")
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    onnx8 = quantize_int8(onnx32, work / "vision.int8.onnx")
    ort_s = time.perf_counter() - t
    t = time.perf_counter()  # static: activation scales fixed on the GPTQ calibration frames
    calib_px = fp32.preprocess_batch(synthetic_frames(a.calibration)).numpy()
    onnx8s = quantize_int8_static(onnx32, work / "vision.int8s.onnx", calib_px)
    static_s = time.perf_counter() - t
    t = time.perf_counter()  # fused: ORT's transformer optimizer, then dynamic INT8
    block = fp32.clip.visual.transformer.resblocks[0].attn
    onnx8f = quantize_int8_fused(onnx32, work / "vision.int8f.onnx", block.num_heads, block.embed_dim)
    fused_s = time.perf_counter() - t
    threads = a.threads
    for name, path, prep in (("ORT FP32", onnx32, export_s), ("ORT INT8", onnx8, export_s + ort_s),
                             ("ORT INT8 static QDQ", onnx8s, export_s + static_s),
                             ("ORT INT8 fused", onnx8f, export_s + fused_s)):
        enc = OrtEncoder(path, threads=threads)
        size = path.stat().st_size / 1e6
        variants[name] = {"model": fp32, "encode": enc.embed_batch, "file_mb": size, "vision_mb": size,
                          "prep_s": prep}
    print(f"ONNX export {export_s:.0f} s, ORT quantization {ort_s:.0f} s")

    for name, v in variants.items():
        t = time.perf_counter()
        idx_emb, q_emb = embed(v["encode"], idx_px, a.batch), embed(v["encode"], q_px, a.batch)
        store = IndexStore.from_embeddings(idx_emb, rows, model=f"bench:{name}", schema=schema)
        report = score_queries(store, q_emb, q_labels, k=5)
        v["knn_f1"] = report["macro_f1"]
        sim = v["model"].embed_texts(texts) @ q_emb.T
        v["t2f"] = rank_metrics(retrieval_ranks(sim, relevant))
        v["cos_to_fp32"] = None
        v["q_emb"] = q_emb
        print(f"{name}: scored in {time.perf_counter() - t:.0f} s, k-NN {v['knn_f1']:.3f}, R@1 {v['t2f']['r1']:.1f}")
    ref = variants["FP32 (torch)"]["q_emb"]
    for v in variants.values():
        v["cos_to_fp32"] = float(np.mean(np.sum(v.pop("q_emb") * ref, axis=1)))

    timing_px = q_px[: a.timing_images]
    wall: dict[str, list[float]] = {n: [] for n in variants}
    cpu: dict[str, list[float]] = {n: [] for n in variants}
    for v in variants.values():  # warm-up: first calls allocate and pick kernels
        v["encode"](timing_px[: a.batch])
    for _ in range(a.reps):
        for name, v in variants.items():  # interleaved, so load on the shared machine hits all alike
            w0, c0 = time.perf_counter(), time.process_time()
            embed(v["encode"], timing_px, a.batch)
            wall[name].append(1e3 * (time.perf_counter() - w0) / len(timing_px))
            cpu[name].append(1e3 * (time.process_time() - c0) / len(timing_px))
    base_wall = statistics.median(wall["FP32 (torch)"])
    base_cpu = statistics.median(cpu["FP32 (torch)"])
    base = variants["FP32 (torch)"]

    lines = [
        f"Model {fp32.identity}; {a.index} indexed + {a.queries} query frames (seeds {a.seed}, {a.seed + 1}); "
        f"{len(texts)} distinct query sentences; GPTQ calibration {a.calibration} frames; {threads} torch "
        f"threads = ORT intra-op threads; batch {a.batch}; timing: median of {a.reps} interleaved repeats "
        f"over {len(timing_px)} images; {platform.processor() or platform.machine()}.",
        "",
        "| variant | file MB | vision encoder MB | ms/image wall | ms/image CPU | speed-up (CPU) | "
        "R@1 | R@5 | R@10 | R@1 change | k-NN macro F1 | F1 change | mean cos to FP32 | prep s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    results = {}
    for name, v in variants.items():
        mw, mc = statistics.median(wall[name]), statistics.median(cpu[name])
        r = v["t2f"]
        results[name] = {"file_mb": v["file_mb"], "vision_mb": v["vision_mb"], "ms_wall": mw, "ms_cpu": mc,
                         "speedup_cpu": base_cpu / mc, "speedup_wall": base_wall / mw, **r,
                         "knn_f1": v["knn_f1"], "cos_to_fp32": v["cos_to_fp32"], "prep_s": v["prep_s"]}
        lines.append(
            f"| {name} | {v['file_mb']:.1f} | {v['vision_mb']:.2f} | {mw:.2f} | {mc:.2f} | {base_cpu / mc:.2f}x | "
            f"{r['r1']:.1f} | {r['r5']:.1f} | {r['r10']:.1f} | {r['r1'] - base['t2f']['r1']:+.1f} | "
            f"{v['knn_f1']:.3f} | {v['knn_f1'] - base['knn_f1']:+.3f} | {v['cos_to_fp32']:.5f} | {v['prep_s']:.0f} |")
    print("\n".join(lines))
    if a.json:
        Path(a.json).write_text(json.dumps({"settings": vars(a), "results": results}, indent=2))
    if a.keep:
        print(f"models and ONNX files kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

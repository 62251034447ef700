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

``--clips DIR`` measures instead what the issue means, text-to-clip R@1/5/10 on the test split of a
clip dataset (``bench/clip_retrieval.py`` renders it; one held-out caption per clip, the whole split
the gallery): every variant embeds the same frames, which are pooled into clip vectors by meanP and
by the AFA student (trained on FP32 vectors, the one the index uses) and ranked through
``core.retrieval.metrics.retrieval_metrics`` (``core.quant.compare.compare_clips``). The frame
proxy, the timing and the static/fused ORT attempts are skipped there.

With ``--clips`` it also prints paired R@1 tests over the same queries (``core.quant.compare.paired_r1``):
each GPTQ variant against RTN of its bits (``--gptq-seeds`` gives one GPTQ variant per calibration seed)
and each variant against FP32. ``--engines`` adds PyTorch's own int8 engines (``bench/quant_engines.py``)
to the timed frame run; ``--profile`` prints the FP32 encoder's CPU time by operator.

    .venv/bin/python bench/quantize.py --index 1500 --queries 500 --calibration 200
    .venv/bin/python bench/quantize.py --clips runs/clip_retrieval_bench --calibration 200
    .venv/bin/python bench/quantize.py --clips runs/clip_retrieval_hard --clip-frames 4 --bits 4 \
        --gptq-seeds 4242,4243,4244 --no-ort --models runs/quant_models
    .venv/bin/python bench/quantize.py --speed-only --no-ort --engines torch-int8,torchao-int8-wo --profile
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

VARIANTS = [(8, "rtn"), (8, "gptq"), (4, "rtn"), (4, "gptq")]  # (bits, method); --bits/--methods select


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
    ap.add_argument("--clips", help="clip dataset folder: measure text-to-clip R@k on its test split instead")
    ap.add_argument("--clip-frames", type=int, help="with --clips: at most this many frames per clip, evenly "
                    "spread (bounds the CPU time of embedding every clip once per variant)")
    ap.add_argument("--speed-only", action="store_true",
                    help="skip the weight-only RTN/GPTQ variants (they run float32 kernels: no speed path)")
    ap.add_argument("--bits", default="8,4", help="weight-only variants: these bit widths (comma-separated)")
    ap.add_argument("--methods", default="rtn,gptq", help="weight-only variants: these methods")
    ap.add_argument("--gptq-seeds", default="4242",
                    help="GPTQ calibration data seeds (comma-separated): one GPTQ variant per seed")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime variants")
    ap.add_argument("--engines", default="",
                    help="also PyTorch int8 engines (bench/quant_engines.py): torch-int8, torchao-int8-dyn, torchao-int8-wo")
    ap.add_argument("--int8-backend", default="x86", help="torch.backends.quantized.engine for torch-int8")
    ap.add_argument("--profile", action="store_true", help="print the FP32 encoder's CPU time by operator group")
    ap.add_argument("--models", help="keep the quantized model folders here and reuse those already made")
    a = parse_args(ap, {"index": 120, "queries": 60, "calibration": 16, "reps": 1, "timing_images": 32}, argv)

    import torch
    from safetensors.torch import save_file

    from core.models import load_model
    from core.quant import QUANT_WEIGHTS
    from core.quant.export import quantize_to_folder, synthetic_frames
    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="scenescope-bench-quant-"))
    models = Path(a.models) if a.models else work
    fp32 = load_model(a.model)
    fp32_file = work / "fp32.safetensors"  # what an FP32 copy of the model weighs
    save_file({k: v.float().contiguous() for k, v in fp32.clip.state_dict().items()}, str(fp32_file))
    variants: dict[str, dict] = {"FP32 (torch)": {
        "model": fp32, "encode": fp32.embed_batch, "file_mb": fp32_file.stat().st_size / 1e6,
        "vision_mb": tensor_bytes(fp32_file) / 1e6, "prep_s": 0.0}}
    seeds = [int(x) for x in a.gptq_seeds.split(",")]
    for bits, method, seed in ([] if a.speed_only else weight_variants(a.bits, a.methods, seeds)):
        name = f"INT{bits} {method.upper()}" + (f" (seed {seed})" if method == "gptq" and len(seeds) > 1 else "")
        out = models / f"int{bits}-{method}" if method == "rtn" else models / f"int{bits}-gptq-c{a.calibration}-s{seed}"
        t = time.perf_counter()
        if not (out / QUANT_WEIGHTS).is_file():  # --models: made once, reused by later runs
            quantize_to_folder(a.model, bits, out, method=method, calibration=a.calibration, seed=seed)
        prep = time.perf_counter() - t
        m = load_model(f"file:{out}")
        variants[name] = {"model": m, "encode": m.embed_batch, "file_mb": (out / QUANT_WEIGHTS).stat().st_size / 1e6,
                          "vision_mb": tensor_bytes(out / QUANT_WEIGHTS) / 1e6, "prep_s": prep}
        print(f"{name}: quantized in {prep:.0f} s ({m.identity})")
    if not a.no_ort:
        add_ort(a, fp32, variants, work)
    for engine in filter(None, a.engines.split(",")):
        add_engine(a, fp32, variants, engine)
    if a.profile:
        from quant_engines import op_shares

        px = fp32.preprocess_batch(synthetic_frames(a.batch, seed=1))
        shares = op_shares(fp32.clip.visual.float().eval(), px)
        print(f"FP32 encoder CPU time by operator (batch {a.batch}, {a.threads} thread(s)): "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items()))
    try:
        if a.clips:
            clip_run(a, fp32, variants)
        else:
            frame_run(a, fp32, variants)
    finally:
        if a.keep:
            print(f"models and ONNX files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def weight_variants(bits: str, methods: str, seeds: list[int]) -> list[tuple[int, str, int]]:
    """(bits, method, calibration seed) of each weight-only variant asked for, in VARIANTS order."""
    keep_bits, keep_methods = {int(b) for b in bits.split(",")}, set(methods.split(","))
    return [(b, m, s) for b, m in VARIANTS if b in keep_bits and m in keep_methods
            for s in (seeds if m == "gptq" else seeds[:1])]


def add_ort(a: argparse.Namespace, fp32: object, variants: dict[str, dict], work: Path) -> None:
    """ONNX Runtime FP32 and INT8 encoders (in frame mode also the static QDQ and fused attempts)."""
    from core.quant.export import synthetic_frames
    from core.quant.ort import (
        OrtEncoder,
        export_vision,
        quantize_int8,
        quantize_int8_fused,
        quantize_int8_static,
    )

    t = time.perf_counter()
    onnx32 = export_vision(fp32.clip, fp32.image_size, work / "vision.onnx")
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    onnx8 = quantize_int8(onnx32, work / "vision.int8.onnx")
    ort_s = time.perf_counter() - t
    onnx_files = [("ORT FP32", onnx32, export_s), ("ORT INT8", onnx8, export_s + ort_s)]
    if a.clips:  # the clip measure: the one ORT INT8 path is enough (accuracy, not speed)
        onnx_files = onnx_files[1:]
    else:
        t = time.perf_counter()  # static: activation scales fixed on the GPTQ calibration frames
        calib_px = fp32.preprocess_batch(synthetic_frames(a.calibration)).numpy()
        onnx8s = quantize_int8_static(onnx32, work / "vision.int8s.onnx", calib_px)
        onnx_files.append(("ORT INT8 static QDQ", onnx8s, export_s + time.perf_counter() - t))
        t = time.perf_counter()  # fused: ORT's transformer optimizer, then dynamic INT8
        block = fp32.clip.visual.transformer.resblocks[0].attn
        onnx8f = quantize_int8_fused(onnx32, work / "vision.int8f.onnx", block.num_heads, block.embed_dim)
        onnx_files.append(("ORT INT8 fused", onnx8f, export_s + time.perf_counter() - t))
    for name, path, prep in onnx_files:
        enc = OrtEncoder(path, threads=a.threads)
        size = path.stat().st_size / 1e6
        variants[name] = {"model": fp32, "encode": enc.embed_batch, "file_mb": size, "vision_mb": size,
                          "prep_s": prep}
    print(f"ONNX export {export_s:.0f} s, ORT quantization {ort_s:.0f} s")


def add_engine(a: argparse.Namespace, fp32: object, variants: dict[str, dict], engine: str) -> None:
    """A PyTorch int8 engine (bench/quant_engines.py) on the FP32 model's vision tower; the size column is
    the int8 state dict saved by torch.save (what such a model would weigh on disk)."""
    import io

    from quant_engines import int8_encoder

    t = time.perf_counter()
    import torch

    encode = int8_encoder(fp32.clip.visual, engine, a.int8_backend)
    buf = io.BytesIO()
    torch.save(encode.module.state_dict(), buf)
    size = buf.tell() / 1e6
    name = f"{engine} ({a.int8_backend})" if engine == "torch-int8" else engine
    variants[name] = {"model": fp32, "encode": encode, "file_mb": size, "vision_mb": size,
                      "prep_s": time.perf_counter() - t}


def clip_run(a: argparse.Namespace, fp32: object, variants: dict[str, dict]) -> None:
    """Text-to-clip R@1/5/10 of every variant on the clip dataset's test split, meanP and AFA."""
    from core.data.manifest import read_manifest
    from core.quant.compare import CLIP_POOLS, compare_clips, spread_frames
    from core.retrieval.data import frame_vectors
    from core.retrieval.evaluate import fit_student

    t = time.perf_counter()
    student = fit_student(a.clips, fp32)  # FP32's, as the index pools every variant (cached in DIR/students)
    out = compare_clips(a.clips, fp32, {n: v["encode"] for n, v in variants.items()}, student=student,
                        batch=a.batch, frames_per_clip=a.clip_frames)
    print(f"embedded and ranked in {time.perf_counter() - t:.0f} s")
    ref = out["FP32 (torch)"]["vectors"]
    cached, _, _ = frame_vectors(a.clips, fp32)  # what eval-retrieval / bench/clip_retrieval.py rank
    frames = read_manifest(a.clips).frames
    rows = spread_frames(frames[frames["split"] == "test"].reset_index(), a.clip_frames)["index"].to_numpy()
    drift = float(np.abs(cached[rows] - ref).max())
    split_rows = ref.shape[0]
    cos = {n: float(np.mean(np.sum(r.pop("vectors") * ref, axis=1))) for n, r in out.items()}
    paired = paired_table({n: r.pop("ranks") for n, r in out.items()})
    pools = {"meanp": "meanP", "afa": "AFA"}
    head = " | ".join(f"{pools[p]} R@1 | R@5 | R@10 | R@1 change" for p in CLIP_POOLS)
    lines = [f"Model {fp32.identity}; clips {a.clips} test split ({split_rows} frames); GPTQ calibration "
             f"{a.calibration} frames; {a.clip_frames or 'all'} frames per clip; {a.threads} torch threads; FP32 "
             f"frame vectors within {drift:.1e} of the cached ones that bench/clip_retrieval.py ranks.", "",
             f"| variant | file MB | vision encoder MB | {head} | mean cos to FP32 | prep s |",
             "|---|---|---|" + "---|" * (4 * len(CLIP_POOLS)) + "---|---|"]
    base = out["FP32 (torch)"]
    for name, r in out.items():
        v = variants[name]
        cells = " | ".join(f"{r[p]['r1']:.1f} | {r[p]['r5']:.1f} | {r[p]['r10']:.1f} | {r[p]['r1'] - base[p]['r1']:+.1f}"
                           for p in CLIP_POOLS)
        lines.append(f"| {name} | {v['file_mb']:.1f} | {v['vision_mb']:.2f} | {cells} | {cos[name]:.5f} | "
                     f"{v['prep_s']:.0f} |")
    print("\n".join(lines + ["", *paired["lines"]]))
    if a.json:
        results = {n: {**r, "cos_to_fp32": cos[n], "file_mb": variants[n]["file_mb"],
                       "vision_mb": variants[n]["vision_mb"], "prep_s": variants[n]["prep_s"]} for n, r in out.items()}
        Path(a.json).write_text(json.dumps({"settings": vars(a), "clips": results, "paired": paired["rows"]},
                                           indent=2))


def paired_table(ranks: dict[str, dict[str, np.ndarray]]) -> dict:
    """Paired R@1 tests over the same queries (``core.quant.compare.paired_r1``): every GPTQ variant
    against the RTN variant of its bits, and every variant against FP32, per pooling."""
    from core.quant.compare import paired_r1

    pairs = [(n, f"INT{n[3]} RTN") for n in ranks if " GPTQ" in n and f"INT{n[3]} RTN" in ranks]
    pairs += [(n, "FP32 (torch)") for n in ranks if n != "FP32 (torch)"]
    lines = ["| A | B | pooling | R@1 A | R@1 B | A - B | 95% CI (paired bootstrap) | hit by A only | by B only | "
             "sign test p | A ranks better | worse | sign test p (ranks) |", "|---|---|---|" + "---|" * 10]
    rows = []
    for x, y in pairs:
        for pool in ranks[x]:
            r = paired_r1(ranks[x][pool], ranks[y][pool])
            rows.append({"a": x, "b": y, "pool": pool, **r})
            lines.append(f"| {x} | {y} | {pool} | {r['r1_a']:.1f} | {r['r1_b']:.1f} | {r['diff']:+.1f} | "
                         f"[{r['ci95'][0]:+.1f}, {r['ci95'][1]:+.1f}] | {r['a_only']} | {r['b_only']} | "
                         f"{r['p_sign']:.3f} | {r['rank_better']} | {r['rank_worse']} | {r['p_rank']:.3f} |")
    return {"lines": lines, "rows": rows}


def frame_run(a: argparse.Namespace, fp32: object, variants: dict[str, dict]) -> None:
    """The frame proxy: text-to-frame R@k, k-NN macro F1 and interleaved encoder timing."""
    from core.index import IndexStore
    from core.quant.compare import render_frames  # the Quantize page's frames, the same for both
    from core.retrieval import rank_metrics, retrieval_ranks
    from core.schema import default_schema
    from core.scoring import score_queries

    schema = default_schema()
    t0 = time.perf_counter()
    idx_frames, idx_labels = render_frames(a.index, a.seed)
    q_frames, q_labels = render_frames(a.queries, a.seed + 1)
    print(f"rendered {a.index} + {a.queries} frames in {time.perf_counter() - t0:.0f} s")
    idx_px, q_px = fp32.preprocess_batch(idx_frames), fp32.preprocess_batch(q_frames)
    rows = [{"path": f"f{i}.png", "clip_id": f"f{i}", **lab} for i, lab in enumerate(idx_labels)]
    sentences = [schema.to_sentence(lab) for lab in q_labels]
    texts = sorted(set(sentences))
    relevant = np.array([[s == t for s in sentences] for t in texts])
    threads = a.threads

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


if __name__ == "__main__":
    main()

"""Does fine-tuning with default settings lift a weak model by >= 5 points of k-NN macro F1 in <= 10 min (issue 6)? `python bench/finetune_weak.py [--quick]`

Fine-tuning a deliberately weak model on the synthetic world, through the job runner.

1. The weak model: ``scenescope-tiny`` trained from scratch for ONE epoch with the bundled model's
   own recipe (`train_default` with `epochs=1`, on its 12k-scene data); or, with
   ``--weak-epochs N --weak-exclude weather=fog,snow``, N epochs without the frames of those values.
2. A fresh synthetic set (another seed) to fine-tune on: train / val / test splits.
3. ``start_job`` with the default FinetuneOptions (8 epochs, AdamW wd 0.1, cosine, bf16; lr unset, so
   the weak model's own default: it carries the bundled model's ``finetune_defaults.json``)
   and, for comparison, the same with higher learning rates; each job re-indexes the dataset and
   compares k-NN macro F1 on the test split before and after.

Writes ``<work>/results.json`` and ``<work>/RESULTS.md`` (curated into ``bench/RESULTS.md``).
``--quick`` makes a tiny weak model and fine-tunes it for one epoch in its own work folder: it
checks that the bench runs, its figures mean nothing.

    .venv/bin/python bench/finetune_weak.py [--work workspace/bench-finetune] [--lrs 1e-5 5e-4]
    .venv/bin/python bench/finetune_weak.py --weak-epochs 12 --weak-exclude weather=fog,snow --lrs 1e-5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import torch
from _quick import parse_args

from core.data import read_manifest
from core.jobs import read_comparison, start_job
from core.jobs.cli import follow
from core.train.default import DefaultRecipe, train_default

LEAD_WORK = Path("workspace/train-default")  # train-default's work folder: its data is reused


def synth(out: Path, scenes: int, seed: int) -> Path:
    from core.synth import ensure_synth_dataset

    return ensure_synth_dataset(out, scenes, 0, seed)


def weak_model(out: Path, scenes: int, clips: int, epochs: int, threads: int, exclude: dict[str, list[str]],
               data_work: Path = LEAD_WORK) -> dict:
    """The bundled recipe (``scenescope train-default``) cut to ``epochs`` epoch(s) of its first
    stage, without the refine, grow and token-pruning distillation stages, and trained without the frames that have the ``exclude`` values:
    a weak start."""
    if (out / "weak.json").is_file():
        return json.loads((out / "weak.json").read_text())
    torch.set_num_threads(threads)
    recipe = DefaultRecipe(epochs=epochs, scenes=scenes, clips=clips, refine_epochs=0, grow_epochs=0,
                           distill_epochs=0)
    summary = train_default(recipe, out=out, work=data_work, exclude=exclude)
    info = {"recipe": asdict(recipe), "excluded": exclude, "train_frames": summary["train_frames"],
            "epochs": epochs, "lr": recipe.lr, "batch_size": recipe.batch_size,
            "seconds": summary["train_seconds"], "log": summary["log"]}
    (out / "weak.json").write_text(json.dumps(info, indent=2))
    return info


def parse_exclude(items: list[str]) -> dict[str, list[str]]:
    """["weather=fog,snow", ...] -> {"weather": ["fog", "snow"]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        attr, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"--weak-exclude {item!r}: expected ATTRIBUTE=VALUE[,VALUE...]")
        out.setdefault(attr, []).extend(v for v in values.split(",") if v)
    return out


def _lr(text: str) -> float | None:
    """``--lrs`` item: a number, or ``default`` (lr left unset: the starting model's own default)."""
    return None if text == "default" else float(text)


def weak_defaults(weak_dir: Path) -> None:
    """The weak start is the bundled recipe cut short, so it carries the bundled model's
    fine-tuning defaults (``finetune_defaults.json``); jobs that leave lr unset take them."""
    from core.train.model_defaults import finetune_defaults, write_defaults_file

    write_defaults_file(weak_dir, {k: (v, f"as the bundled scenescope-tiny, whose recipe this model cuts short: {s}")
                                   for k, (v, s) in finetune_defaults("scenescope-tiny").items()})


def run_job(workspace: Path, data: Path, base: str, options: dict, threads: int, maps: bool = True) -> dict:
    load_before = os.getloadavg()[0]
    t0 = time.time()
    job = start_job(workspace, {"data_dir": str(data), "base_model": base, "options": options,
                                "threads": threads, "maps": maps})
    status = follow(str(workspace), job)
    wall = time.time() - t0
    if status["state"] != "finished":
        raise RuntimeError(f"job {job} {status['state']}: {status.get('error')}")
    result, cmp = status["result"], read_comparison(workspace, job)
    return {"job": job, "options": options, "wall_s": round(wall, 1),
            "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "train_s": round(result["train_seconds"], 1), "images_per_s": round(result["images_per_s"], 1),
            "peak_rss_mb": round(result["peak_rss_mb"]), "val_f1_before": result["val_f1_before"],
            "val_f1_after": result["val_f1_after"], "test_f1_before": cmp["macro_f1_before"],
            "test_f1_after": cmp["macro_f1_after"], "log": result["log"],
            "model_defaults": result.get("model_defaults") or {},
            "improved": len(cmp["improved"]), "regressed": len(cmp["regressed"]),
            "fixed": len(cmp["fixed"]), "new_failures": len(cmp["new_failures"]),
            "comparison_md": (workspace / "jobs" / job / "comparison.md").read_text()}


def write_results(path: Path, res: dict) -> None:
    w, ft = res["weak"], res["finetune_data"]
    lines = [
        "# Fine-tuning a weak model (synthetic world)",
        "",
        f"Run {res['date']} on {res['machine']} (torch {res['torch']}); `bench/finetune_weak.py`.",
        "",
        f"- Weak start: `scenescope-tiny` from scratch, **{w['epochs']} epoch(s)** of the bundled recipe "
        f"(lr {w['lr']}, batch {w['batch_size']}) on {w['train_frames']} synthetic train frames "
        + (f"**without {w['excluded']}** " if w.get("excluded") else "") + f"({w['seconds']} s).",
        f"- Fine-tuning data: {ft['train']} train / {ft['val']} val / {ft['test']} test synthetic frames "
        f"(other seed). Jobs started with `start_job` (background worker, {res['threads']} threads); "
        "each re-indexes the train split with both models and scores k-NN (k=5) votes on the test split.",
        "",
        "| run | lr | epochs | test macro F1 before | after | delta (points) | val F1 before -> after "
        "| train s | job wall s | train images/s | peak RSS MB | load avg start/end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        o = r["options"]
        delta = 100 * (r["test_f1_after"] - r["test_f1_before"])
        lines.append(
            f"| {r['label']} | {o.get('lr') or r.get('model_defaults', {}).get('lr', [1e-5])[0]:g} | {o.get('epochs', 8)} | {r['test_f1_before']:.3f} | "
            f"{r['test_f1_after']:.3f} | {delta:+.1f} | {r['val_f1_before']:.3f} -> {r['val_f1_after']:.3f} | "
            f"{r['train_s']} | {r['wall_s']} | {r['images_per_s']} | {r['peak_rss_mb']} | "
            f"{r['load_avg'][0]} / {r['load_avg'][1]} |")
    lines += ["", "Per-epoch validation (val macro F1 / loss):", ""]
    for r in res["runs"]:
        epochs = ", ".join(f"{row['epoch']}: {row.get('val_f1', float('nan')):.3f} / {row['loss']:.3f}"
                           for row in r["log"])
        lines.append(f"- {r['label']}: {epochs}")
    for r in res["runs"]:
        lines += ["", f"### Comparison table, {r['label']}", "", r["comparison_md"]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="workspace/bench-finetune")
    p.add_argument("--weak-scenes", type=int, default=DefaultRecipe.scenes,
                   help="scenes of the weak model's training set (the bundled recipe's by default)")
    p.add_argument("--weak-clips", type=int, default=DefaultRecipe.clips)
    p.add_argument("--data-work", default=str(LEAD_WORK),
                   help="where the weak model's training data is made or reused (train-default's work folder)")
    p.add_argument("--weak-epochs", type=int, default=1)
    p.add_argument("--weak-exclude", action="append", default=[], metavar="ATTR=V1[,V2]",
                   help="train the weak model without frames having these values (e.g. weather=fog,snow)")
    p.add_argument("--ft-scenes", type=int, default=4000)
    p.add_argument("--lrs", type=_lr, nargs="+", default=[None],
                   help="a job per learning rate; 'default' (the default): lr unset, the weak model's own")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="workspace/bench-finetune/RESULTS.md",
                   help="generated report (bench/RESULTS.md holds the curated copy)")
    p.add_argument("--no-maps", action="store_true", help="jobs skip the before/after UMAP maps")
    p.add_argument("--prepare-only", action="store_true", help="make the data and the weak model, then stop")
    quick = "workspace/bench-finetune-quick"
    a = parse_args(p, {"work": quick, "data_work": quick, "out": f"{quick}/RESULTS.md", "weak_scenes": 300,
                       "weak_clips": 4, "ft_scenes": 200, "epochs": 1, "no_maps": True}, argv)

    work = Path(a.work)
    if a.quick and work.resolve() == Path(quick).resolve():
        shutil.rmtree(work, ignore_errors=True)  # a check that it runs must not reuse an old run's model
    ft_data = synth(work / f"synth-ft-{a.ft_scenes}", a.ft_scenes, 202)
    exclude = parse_exclude(a.weak_exclude)
    weak_dir = work / ("weak-model" if not exclude and a.weak_epochs == 1 else "weak-" + "-".join(
        [f"{a.weak_epochs}ep", *(f"no-{v}" for vs in exclude.values() for v in vs)]))
    weak = weak_model(weak_dir, a.weak_scenes, a.weak_clips, a.weak_epochs, a.threads, exclude, Path(a.data_work))
    weak_defaults(weak_dir)
    if a.prepare_only:
        return
    frames = read_manifest(ft_data).frames
    res = {
        "date": datetime.now().isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {a.threads} threads",
        "torch": torch.__version__, "threads": a.threads, "weak": {k: v for k, v in weak.items() if k != "log"},
        "finetune_data": {s: int((frames["split"] == s).sum()) for s in ("train", "val", "test")},
        "runs": [],
    }
    for lr in a.lrs:
        options = {"epochs": a.epochs, **({} if lr is None else {"lr": lr})}
        changed = [f"lr {lr:g}"] * (lr is not None) + [f"{a.epochs} epochs"] * (a.epochs != 8)
        label = "defaults" + (f" but {', '.join(changed)}" if changed else "")
        run = run_job(work / "ws", ft_data, f"file:{weak_dir.resolve()}", options, a.threads, not a.no_maps)
        run["label"] = label
        res["runs"].append(run)
        (work / "results.json").write_text(json.dumps(res, indent=2))
        write_results(Path(a.out), res)
        print(run["comparison_md"])


if __name__ == "__main__":
    main()

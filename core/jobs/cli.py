"""``scenescope finetune`` and ``scenescope jobs``: start, watch, list, cancel and resume jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.workspace import workspace

DEFAULT_WORKSPACE = str(workspace())  # core.workspace: $SCENESCOPE_WORKSPACE or the repository's workspace/


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def follow(workspace: str, job_id: str, poll: float = 0.5, out: Any = sys.stderr) -> dict:
    """Draw a progress bar of the job until it ends; returns its final status."""
    from tqdm import tqdm

    from core.jobs.runner import ACTIVE, job_status

    bar = None
    try:
        while True:
            s = job_status(workspace, job_id)
            total = (s.get("epochs") or 0) * (s.get("steps_per_epoch") or 0)
            if total and bar is None:
                bar = tqdm(total=total, desc="finetune", unit="step", file=out, dynamic_ncols=True)
            if bar is not None:
                done = max(0, ((s.get("epoch") or 1) - 1) * s["steps_per_epoch"] + (s.get("step") or 0))
                bar.n = min(total, done)
                bar.set_description(f"{s.get('phase', '')} epoch {s.get('epoch') or 0}/{s.get('epochs')}")
                bar.set_postfix_str(f"loss {_fmt(s.get('loss'))} val F1 {_fmt(s.get('val_f1'))} "
                                    f"ETA {_fmt_eta(s.get('eta_s'))}", refresh=False)
                bar.refresh()
            if s["state"] not in ACTIVE:
                return s
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()


def _report_end(workspace: str, status: dict) -> int:
    from core.compare import Comparison
    from core.jobs.runner import read_comparison

    state = status["state"]
    if state == "finished":
        result = status.get("result") or {}
        print(f"job {status['job_id']} finished: new model {result.get('model_name')}")
        print(f"val macro F1 {_fmt(result.get('val_f1_before'))} -> {_fmt(result.get('val_f1_after'))}"
              f" ({result.get('images_per_s', 0):.1f} training images/s)")
        cmp = read_comparison(workspace, status["job_id"])
        if cmp is not None:
            print()
            print(Comparison.from_dict(cmp).to_markdown())
        return 0
    if state == "failed":
        print(f"job {status['job_id']} failed: {status.get('error')} "
              f"(log: {Path(workspace) / 'jobs' / status['job_id'] / 'output.log'})", file=sys.stderr)
        return 1
    print(f"job {status['job_id']} {state}; continue it with `scenescope jobs resume {status['job_id']}`",
          file=sys.stderr)
    return 1


def _watch(workspace: str, job_id: str) -> int:
    try:
        status = follow(workspace, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped watching; job {job_id} keeps running in the background. "
              f"Watch: `scenescope jobs show {job_id} --follow`; stop: `scenescope jobs cancel {job_id}`",
              file=sys.stderr)
        return 130
    return _report_end(workspace, status)


def cmd_finetune(a: argparse.Namespace) -> int:
    from core.jobs.runner import start_job

    options: dict[str, Any] = {
        "epochs": a.epochs, "lr": a.lr, "weight_decay": a.weight_decay, "batch_size": a.batch_size,
        "warmup_fraction": a.warmup, "precision": a.precision, "seed": a.seed,
        "freeze_text": a.freeze_text, "freeze_blocks": a.freeze_blocks,
        "unfreeze_text_at": a.unfreeze_text_at, "unfreeze_vision_at": a.unfreeze_vision_at,
        "lora_rank": a.lora_rank, "lora_alpha": a.lora_alpha, "wise_ft": a.wise_ft, "val_k": a.k,
        "device": a.device,
    }
    spec = {"data_dir": a.data, "base_model": a.model, "options": options, "out_dir": a.out,
            "compare": not a.no_compare, "eval_split": a.eval_split, "k": a.k, "maps": not a.no_maps,
            "threads": a.threads, "train_frames": a.train_frames}
    job_id = start_job(a.workspace, spec)
    print(f"started job {job_id} (workspace {a.workspace})", file=sys.stderr)
    if a.lr is None:
        from core.train.model_defaults import describe, finetune_defaults

        print(f"lr: {a.model}'s default, {describe(finetune_defaults(a.model))}", file=sys.stderr)
    if a.detach:
        print(job_id)
        return 0
    return _watch(a.workspace, job_id)


def _row(s: dict) -> str:
    spec = s.get("spec") or {}
    epoch = f"{s.get('epoch') or 0}/{s.get('epochs') or (spec.get('options') or {}).get('epochs', '?')}"
    return (f"{s['job_id']:<26} {s['state']:<12} {epoch:>6} {_fmt(s.get('loss')):>7} "
            f"{_fmt(s.get('val_f1')):>7} {_fmt_eta(s.get('eta_s')) if s['state'] == 'running' else '-':>8}  "
            f"{spec.get('base_model', '')} on {Path(spec.get('data_dir', '')).name}")


def cmd_jobs(a: argparse.Namespace) -> int:
    from core.jobs import runner

    action = a.action or "list"
    if action == "list":
        jobs = runner.list_jobs(a.workspace)
        if a.json:
            print(json.dumps(jobs, indent=2, default=str))
        elif not jobs:
            print(f"no jobs in {a.workspace}")
        else:
            print(f"{'job':<26} {'state':<12} {'epoch':>6} {'loss':>7} {'val F1':>7} {'ETA':>8}  what")
            print("\n".join(_row(s) for s in jobs))
        return 0
    if not a.job_id:
        raise ValueError(f"`scenescope jobs {action}` needs a job id; see `scenescope jobs`")
    if action == "show":
        if a.follow:
            return _watch(a.workspace, a.job_id)
        s = runner.job_status(a.workspace, a.job_id)
        if a.json:
            print(json.dumps(s, indent=2, default=str))
            return 0
        print(_row(s))
        for row in s.get("log", []):
            print(f"  epoch {row['epoch']}: loss {row['loss']:.4f}  val F1 {_fmt(row.get('val_f1'))}")
        if s.get("error"):
            print(f"  error: {s['error']}")
        if s["state"] in ("finished", "failed", "cancelled", "interrupted"):
            return _report_end(a.workspace, s) if s["state"] == "finished" else 0
        return 0
    if action == "cancel":
        s = runner.cancel_job(a.workspace, a.job_id, force=a.force)
        print(f"job {a.job_id}: {s['state']}{' (stopping at the next step)' if s['state'] == 'running' else ''}")
        return 0
    if action == "resume":
        runner.resume_job(a.workspace, a.job_id)
        print(f"resumed job {a.job_id} from its last checkpoint", file=sys.stderr)
        return _watch(a.workspace, a.job_id) if not a.detach else 0
    raise ValueError(f"unknown jobs action {action!r}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``finetune`` and ``jobs`` to the ``scenescope`` command line."""
    from core.model_names import DEFAULT_MODEL as model
    from core.train.model_defaults import describe, finetune_defaults
    from core.train.options import OPTION_HELP as H
    from core.train.options import FinetuneOptions

    d = FinetuneOptions()
    # The lr default belongs to the starting model; help shows the one --model's default gets.
    lr_default = describe(finetune_defaults(model)).replace("%", "%%")
    s = sub.add_parser("finetune", help="fine-tune a model on a dataset (background job) and compare")
    s.add_argument("--data", required=True, help="dataset folder with a manifest (train/val/test splits)")
    s.add_argument("--model", default=model, help="registry model to start from")
    s.add_argument("--epochs", type=int, default=d.epochs, help=H["epochs"])
    s.add_argument("--lr", type=float, default=d.lr,
                   help=f"{H['lr']} Default for --model {model}: {lr_default}")
    s.add_argument("--weight-decay", type=float, default=d.weight_decay)
    s.add_argument("--batch-size", type=int, default=d.batch_size, help=H["batch_size"])
    s.add_argument("--warmup", type=float, default=d.warmup_fraction, help="warmup fraction of the steps")
    s.add_argument("--precision", default=d.precision, choices=["auto", "bf16", "fp16", "fp32"])
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--freeze-text", action="store_true", help="lock the text tower")
    s.add_argument("--freeze-blocks", type=int, default=0, help="freeze embeddings + first N blocks")
    s.add_argument("--unfreeze-text-at", type=int, default=None, metavar="EPOCH",
                   help="gradual unfreezing: text tower trains from this epoch (1-based)")
    s.add_argument("--unfreeze-vision-at", type=int, default=None, metavar="EPOCH")
    s.add_argument("--lora-rank", type=int, default=0, help="> 0: LoRA adapters (peft) instead of full weights")
    s.add_argument("--lora-alpha", type=float, default=d.lora_alpha)
    s.add_argument("--wise-ft", action="store_true", help="WiSE-FT: blend with the start weights, alpha on val")
    s.add_argument("--k", type=int, default=d.val_k, help="neighbours in the k-NN vote")
    s.add_argument("--device", default=d.device)
    s.add_argument("--threads", type=int, default=None, help="torch threads of the job (default: all cores)")
    s.add_argument("--train-frames", type=int, default=None,
                   help="quick run: train on this many random train frames (default: all)")
    s.add_argument("--out", default=None, help="model folder (default <workspace>/models/<job>)")
    s.add_argument("--eval-split", default="test", help="split of the before/after comparison")
    s.add_argument("--no-compare", action="store_true", help="skip re-indexing and the before/after table")
    s.add_argument("--no-maps", action="store_true", help="skip the UMAP maps of the comparison")
    s.add_argument("--workspace", default=DEFAULT_WORKSPACE)
    s.add_argument("--detach", action="store_true", help="print the job id and return")
    s.set_defaults(fn=lambda a: _exit(cmd_finetune(a)))

    s = sub.add_parser("jobs", help="list, show, cancel or resume background jobs")
    s.add_argument("action", nargs="?", choices=["list", "show", "cancel", "resume"], default="list")
    s.add_argument("job_id", nargs="?")
    s.add_argument("--workspace", default=DEFAULT_WORKSPACE)
    s.add_argument("--follow", action="store_true", help="show: watch with a progress bar")
    s.add_argument("--force", action="store_true", help="cancel: kill at once instead of at the next step")
    s.add_argument("--detach", action="store_true", help="resume: do not watch")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=lambda a: _exit(cmd_jobs(a)))


def _exit(code: int) -> None:
    # core.cli.main ignores return values; a non-zero job outcome must still reach the shell.
    if code:
        raise SystemExit(code)

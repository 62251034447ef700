"""VLM training as a background job (``kind: train-vqa``): checked when started, run by the worker.

The spec names the dataset (``data_dir``, with its ``qa.jsonl`` from ``synth --qa``), the frozen
vision tower (``base_model``) and the VLM folder to write (``out_dir``, default
``<workspace>/models/<job_id>``). Its ``options`` are ``core.vqa.train_vlm.train_vqa`` keyword
arguments (``VQA_OPTIONS``). Training checkpoints every finished epoch of every stage in the job's
``state/`` folder, so ``resume`` continues from the last one and ends with the same weights as a
run that never stopped; ``cancel`` stops it at the next step. The finished job leaves
``training.json`` (the training report) beside its status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import atomic_write_text

if TYPE_CHECKING:
    from core.jobs.runner import JobSpec
    from core.jobs.worker import Worker

KIND = "train-vqa"
# train_vqa's options a job may set, with the type each must have (checked before anything runs).
VQA_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "text_epochs": int, "stage1_epochs": int, "stage2_epochs": int, "keep_ratio": (int, float), "batch_size": int,
    "lr_align": (int, float), "lr_qa": (int, float), "hidden": int, "layers": int, "heads": int,
    "intermediate": int, "vocab_size": int, "pooled": bool, "prefix_norm": bool, "feature_norm": bool, "pooled_norm": bool, "mc_loss": (int, float), "init": str,
    "max_rows": int,
    "max_frames": int, "seed": int,
}


def check_vqa_spec(spec: JobSpec) -> None:
    """Refuse a spec the worker would fail on, before anything runs in the background."""
    from core.jobs.errors import JobError

    for key, value in spec.options.items():
        if key not in VQA_OPTIONS:
            raise JobError(f"VLM training option {key!r} is unknown; known: {sorted(VQA_OPTIONS)}")
        if value is None and key in ("max_rows", "max_frames"):  # None: no cap
            continue
        want = VQA_OPTIONS[key]
        if isinstance(value, bool) and want is not bool:
            raise JobError(f"VLM training option {key}: {value!r} is not a number")
        if not isinstance(value, want):
            raise JobError(f"VLM training option {key}: {value!r} has the wrong type")
        if want not in (bool, str) and value < 0:
            raise JobError(f"VLM training option {key}: {value!r} is negative")
    if not 0 < float(spec.options.get("keep_ratio", 0.25)) <= 1:
        raise JobError("VLM training option keep_ratio must be in (0, 1]")
    if spec.target or spec.train_frames is not None:
        raise JobError("target footage and a training subset are not VLM training options (use max_frames)")


def run_vqa(worker: Worker) -> bool:
    """Train the job's VLM; True when it stopped early on a cancel request."""
    from core.vqa.train_vlm import train_vqa

    spec, jdir = worker.spec, worker.jdir
    report = train_vqa(spec.data_dir, spec.out_dir, vision=spec.base_model, state_dir=jdir / "state",
                       on_progress=worker.update, should_stop=worker.should_stop,
                       progress=lambda line: print(line, flush=True), **spec.options)
    if report.get("stopped"):
        return True
    atomic_write_text(jdir / "training.json", json.dumps(report, indent=2, default=str))
    worker.status["result"] = {"model_dir": str(spec.out_dir), "kind": KIND, "loss_before": report["loss_before"],
                               "loss_after": report["loss_after"], "val_loss": report["val_loss"]}
    return False


def read_vqa_report(jdir: Path) -> dict[str, Any] | None:
    """The finished VLM training job's report, or None."""
    path = jdir / "training.json"
    return json.loads(path.read_text()) if path.is_file() else None

"""Fine-tuning jobs in the workspace: options, start, status, cancel, compare."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.workspace import (
    workspace,
)

if TYPE_CHECKING:
    pass


# ---- fine-tuning jobs (in the workspace) -------------------------------------------------------------
def job_errors() -> tuple[type[Exception], ...]:
    """Errors a job action reports in one line (a held lock, a missing job, a bad option)."""
    from core.jobs import JobError

    return (JobError, OSError, ValueError)


def finetune_fields() -> tuple[list[Any], dict[str, str]]:
    """The fine-tuning options with defaults (dataclass fields, in order) and their help texts."""
    import dataclasses

    from core.train.finetune import OPTION_HELP, FinetuneOptions

    fields = [f for f in dataclasses.fields(FinetuneOptions) if f.default is not dataclasses.MISSING]
    return fields, dict(OPTION_HELP)


def finetune_defaults(base_model: str) -> dict[str, tuple[float, str]]:
    """Option -> (default, where it comes from) for the options whose default belongs to the
    starting model (the learning rate); ValueError for a model name the registry does not know."""
    from core.train.model_defaults import finetune_defaults as defaults

    return defaults(base_model)


def start_job(spec: Mapping[str, Any]) -> str:
    from core.jobs import start_job as start

    return start(workspace(), dict(spec))


def list_jobs() -> list[dict[str, Any]]:
    from core.jobs import list_jobs as jobs

    return jobs(workspace())


def job_status(job_id: str) -> dict[str, Any]:
    from core.jobs import job_status as status

    return status(workspace(), job_id)


def cancel_job(job_id: str) -> Any:
    from core.jobs import cancel_job as cancel

    return cancel(workspace(), job_id)


def resume_job(job_id: str) -> Any:
    from core.jobs import resume_job as resume

    return resume(workspace(), job_id)


def job_comparison(job_id: str) -> Any:
    """The finished job's before/after ``core.compare.Comparison``, or None when it has none."""
    from core.compare import Comparison
    from core.jobs import read_comparison

    raw = read_comparison(workspace(), job_id)
    return Comparison.from_dict(raw) if raw else None


def job_index_meta(job_id: str) -> pd.DataFrame | None:
    """The frame table of the index a job built (for colouring its maps), or None when it is gone."""
    from core.index import IndexStore as Store

    try:
        return Store.load(workspace() / "jobs" / job_id / "index").meta
    except Exception:  # the job's index is gone or unreadable: its maps are drawn uncoloured
        return None


def train_choices() -> dict[str, list[tuple[str, str]]]:
    """The Train page's choice options as ``(value, words)``: device, precision (``auto`` says what
    it resolves to here) and save dtype."""
    import os

    import torch

    from core.train.resources import resolve_precision

    devices = [("cpu", f"CPU ({os.cpu_count() or 1} cores)")]
    if torch.cuda.is_available():
        devices.append(("cuda", f"GPU ({torch.cuda.get_device_name(0)})"))
    where = {"cpu": "this CPU", "cuda": "this GPU"}
    precision = [("auto", "Automatic (" + ", ".join(f"{resolve_precision('auto', d)} on {where[d]}"
                                                     for d, _ in devices) + ")"),
                 ("fp32", "32-bit float (fp32): exact, the safe choice"),
                 ("bf16", "bfloat16 (bf16): faster only where the chip computes it natively"),
                 ("fp16", "16-bit float (fp16): GPU only, loss-scaled")]
    save = [("float32", "32-bit float: exact (small fine-tuning changes survive)"),
            ("float16", "16-bit float: half the size, may round small changes away"),
            ("bfloat16", "bfloat16: half the size, coarser still")]
    return {"device": devices, "precision": precision, "save_dtype": save}


def job_limits(status: Mapping[str, Any]) -> str:
    """What bounds the job's speed, in one line (``CPU-bound: 2 threads on 2 cores · fp32 · ...``)."""
    from core.jobs.limits import limits_note

    return limits_note(dict(status))


def train_frame_count(data_dir: str) -> int | None:
    """Frames in the dataset's train split (None when its manifest cannot be read), for run estimates."""
    from core.data import read_manifest

    try:
        return int((read_manifest(data_dir, check_files=False).frames["split"] == "train").sum())
    except Exception:  # a folder typed in that is no dataset yet: the estimate is left out
        return None


def measured_throughput(jobs: Sequence[Mapping[str, Any]]) -> float | None:
    """Training images per second the newest job that trained measured (None before any)."""
    for j in jobs:
        rate = j.get("images_per_s") or (j.get("result") or {}).get("images_per_s")
        if rate:
            return float(rate)
    return None


# ---- adaptation jobs (issue 20) ------------------------------------------------------------------
def adapt_fields() -> tuple[list[Any], dict[str, str]]:
    """The adaptation options with defaults (dataclass fields, in order) and their help texts."""
    import dataclasses

    from core.train.adapt import OPTION_HELP, AdaptOptions

    return [f for f in dataclasses.fields(AdaptOptions) if f.default is not dataclasses.MISSING], dict(OPTION_HELP)


def adapt_summary(job_id: str) -> dict[str, Any] | None:
    """A finished adaptation job's summary (options, log, before/after on the target footage), or None."""
    from core.jobs.adapt_job import read_adapt_summary
    from core.jobs.runner import job_dir

    return read_adapt_summary(job_dir(workspace(), job_id))


def adapt_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The before/after table of an adaptation, one row per measure, in words."""
    from core.train.adapt import before_after_rows

    return pd.DataFrame(before_after_rows(summary["before"], summary["after"]),
                        columns=["Measure", "Before", "After"])

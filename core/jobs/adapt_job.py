"""Adaptation as a background job (``kind: adapt``): checked when started, run by the worker.

The job's spec names the labelled source dataset (``data_dir``), the unlabelled ``target``
footage, optionally an ``index`` to measure against and a ``labels`` table of the target frames
(accuracy where labels exist; evaluation only). Its ``options`` are
:class:`core.train.adapt.AdaptOptions` fields. ``core.train.adapt.adapt`` keeps its per-epoch
state in the job's ``state/`` folder, so ``resume`` continues from the last finished epoch and
reuses the 'before' measurement; the finished job leaves ``adapt.json`` and ``adapt.md`` (the
before/after table on the target footage) beside its status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import atomic_write_text

if TYPE_CHECKING:
    from core.jobs.runner import JobSpec
    from core.jobs.worker import Worker

KIND = "adapt"


def check_adapt_spec(spec: JobSpec) -> None:
    """Refuse a spec the worker would fail on, before anything runs in the background."""
    from core.jobs.errors import JobError
    from core.train.adapt import AdaptOptions

    try:
        AdaptOptions.from_dict(spec.options).check()
    except (TypeError, ValueError) as e:
        raise JobError(f"adaptation options: {e}") from None
    if not spec.target:
        raise JobError("an adaptation job needs target footage: one or more images, clips or folders")
    for t in [*spec.target, *([spec.labels] if spec.labels else [])]:
        if not Path(t).exists():
            raise JobError(f"{t}: not found")
    if spec.train_frames is not None:
        raise JobError("a training subset is a fine-tuning option; adaptation uses the whole train split")


def resolved(spec: JobSpec) -> dict[str, Any]:
    """The spec's paths made absolute (the worker runs from the repository root)."""
    return {"target": [str(Path(t).resolve()) for t in spec.target],
            "labels": str(Path(spec.labels).resolve()) if spec.labels else None,
            "index": str(Path(spec.index).resolve()) if spec.index else None}


def run_adapt(worker: Worker) -> bool:
    """Run the job's adaptation; True when it stopped early on a cancel request."""
    from core.train.adapt import AdaptOptions, adapt

    spec, jdir = worker.spec, worker.jdir
    result = adapt(spec.data_dir, spec.target, spec.base_model, spec.out_dir, AdaptOptions.from_dict(spec.options),
                   index=spec.index, state_dir=jdir / "state", on_progress=worker.update,
                   should_stop=worker.should_stop, labels=spec.labels)
    if result.stopped:
        return True
    summary = json.loads((Path(spec.out_dir) / "adapt.json").read_text())
    atomic_write_text(jdir / "adapt.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(jdir / "adapt.md", (Path(spec.out_dir) / "MODEL_CARD.md").read_text())
    worker.status["result"] = {"model_name": result.model_name, "model_dir": str(result.model_dir),
                               "identity": result.identity, "kind": KIND}
    worker.status["comparison"] = {k: {"before": result.before.get(k), "after": result.after.get(k)}
                                   for k in ("familiarity_median", "flagged_share", "domain_probe")}
    return False


def read_adapt_summary(jdir: Path) -> dict[str, Any] | None:
    """The finished adaptation job's summary (``core.train.adapt`` writes it), or None."""
    path = jdir / "adapt.json"
    return json.loads(path.read_text()) if path.is_file() else None

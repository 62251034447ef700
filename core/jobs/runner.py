"""Background training jobs: one worker process per job, one training job per workspace.

Layout: ``<workspace>/jobs/<job_id>/`` holds ``spec.json`` (what to run), ``status.json``
(written atomically by the worker only while it lives), ``output.log`` (the worker's stdout and
stderr), ``state/`` (per-epoch checkpoints) and ``comparison.json``; the new model goes to
``<workspace>/models/<job_id>``.

The workspace lock is an ``flock`` on ``<workspace>/jobs/train.lock``: the starter takes it and
hands the open descriptor to the worker, so it is held exactly as long as the worker lives and
the kernel drops it when the worker dies, however it dies (kill -9 included). A job whose status
says queued/running but whose worker process is gone reads as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.jobs.errors import JobError
from core.locks import exclusive_lock, mark_lock

ACTIVE = ("queued", "running")
STATES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
LOCK_NAME = "train.lock"
LOCK_FD_ENV = "SCENESCOPE_JOB_LOCK_FD"
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTING_GRACE_S = 30.0
CANCEL_WAIT_S = 4.0  # a cancel waits this long for the worker to record it, then kills the worker


class JobLockedError(JobError):
    """Another training job holds the workspace."""


@dataclass
class JobSpec:
    """What a fine-tuning job runs. ``options`` are :class:`FinetuneOptions` fields."""

    data_dir: str
    base_model: str = "scenescope-tiny"
    options: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None  # default <workspace>/models/<job_id>
    compare: bool = True  # re-index with both models and compare on ``eval_split``
    eval_split: str = "test"  # falls back to val when the dataset has no test frames
    k: int = 5
    maps: bool = True  # UMAP maps of both indexes, Procrustes-aligned
    threads: int | None = None  # torch threads in the worker (default: all cores)
    train_frames: int | None = None  # a quick run: train on this many random train frames (None: all)
    # or "adapt" (core.jobs.adapt_job): options are AdaptOptions fields; or "train-vqa"
    # (core.jobs.vqa_job): options are train_vqa's keyword arguments, base_model the frozen tower.
    kind: str = "finetune"
    # Adaptation only: unlabelled target footage, an index to measure it against, hand labels.
    target: list[str] = field(default_factory=list)
    index: str | None = None
    labels: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise JobError(f"unknown job spec fields {unknown}; known: {sorted(known)}")
        return cls(**d)


# ---- paths and small helpers -------------------------------------------------------------------
def jobs_dir(workspace: str | Path) -> Path:
    return Path(workspace) / "jobs"


def job_dir(workspace: str | Path, job_id: str) -> Path:
    d = jobs_dir(workspace) / job_id
    if "/" in job_id or job_id.startswith(".") or not (d / "spec.json").is_file():
        raise JobError(f"no job {job_id!r} in {jobs_dir(workspace)}; see `scenescope jobs`")
    return d


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_status(jdir: Path, status: dict[str, Any]) -> None:
    status = {**status, "updated": time.time()}
    atomic_write_text(jdir / "status.json", json.dumps(status, indent=2, default=str))


def _stat_fields(path: Path) -> list[str] | None:
    try:
        stat = path.read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    f = _stat_fields(Path(f"/proc/{pid}/stat"))
    return None if f is None else f[19]


def _any_thread_running(pid: int) -> bool:
    """Whether any thread of ``pid`` is not yet a zombie.

    After kill -9 the main thread can turn zombie while the other threads are still tearing
    down, and the open files (the workspace lock) go only with the last of them.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for t in tasks:
        f = _stat_fields(t / "stat")
        if f is not None and f[0] not in ("Z", "X"):
            return True
    return False


def process_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    if Path("/proc/self/task").is_dir():
        return (start is None or _proc_start(pid) == start) and _any_thread_running(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- the workspace lock ------------------------------------------------------------------------
def workspace_lock(workspace: str | Path) -> contextlib.AbstractContextManager[int]:
    """Hold the workspace's training lock (non-blocking); yields the descriptor.

    Raises :class:`JobLockedError` naming the job that holds it.
    """

    def busy(holder: list[str]) -> JobLockedError:
        who = f"job {holder[0]}" if holder else "another job"
        return JobLockedError(
            f"{who} is already training in workspace {workspace}; one training job per workspace "
            f"at a time. Watch it with `scenescope jobs show {holder[0] if holder else 'ID'}` or "
            "stop it with `scenescope jobs cancel ID`."
        )

    return exclusive_lock(jobs_dir(workspace) / LOCK_NAME, busy)


def _spawn(workspace: Path, job_id: str, fd: int) -> subprocess.Popen:
    """Start the worker, handing it the locked descriptor (it keeps the lock for its lifetime)."""
    jdir = jobs_dir(workspace) / job_id
    env = dict(os.environ, **{LOCK_FD_ENV: str(fd)})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    with open(jdir / "output.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.jobs.worker", str(jdir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            pass_fds=(fd,), start_new_session=True,  # Ctrl-C in the starting terminal leaves it running
            cwd=str(REPO_ROOT),
        )
    return proc


# ---- public API ------------------------------------------------------------------------------
def start_job(workspace: str | Path, spec: JobSpec | dict[str, Any]) -> str:
    """Validate ``spec``, take the workspace lock and start the worker; returns the job id."""
    from core.jobs.adapt_job import KIND as ADAPT
    from core.jobs.adapt_job import check_adapt_spec, resolved
    from core.jobs.vqa_job import KIND as VQA
    from core.jobs.vqa_job import check_vqa_spec
    from core.train.finetune import FinetuneOptions

    spec = spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)
    if spec.kind not in ("finetune", ADAPT, VQA):
        raise JobError(f"unknown job kind {spec.kind!r}; known: finetune, {ADAPT}, {VQA}")
    if spec.kind == ADAPT:
        check_adapt_spec(spec)
    elif spec.kind == VQA:
        check_vqa_spec(spec)
    else:
        FinetuneOptions.from_dict(spec.options).check()  # fail here, not in the background
    if spec.train_frames is not None and spec.train_frames < 2:
        raise JobError(f"a training subset needs at least 2 frames, got {spec.train_frames}")
    if not Path(spec.data_dir).is_dir():
        raise JobError(f"{spec.data_dir}: dataset folder not found")
    check_frames_rendered(spec)
    workspace = Path(workspace).resolve()
    with workspace_lock(workspace) as fd:
        prefix = {ADAPT: "ad", VQA: "vq"}.get(spec.kind, "ft")
        job_id = f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        jdir = jobs_dir(workspace) / job_id
        jdir.mkdir(parents=True)
        spec = JobSpec(**{**asdict(spec), "data_dir": str(Path(spec.data_dir).resolve()),
                          "out_dir": str(Path(spec.out_dir).resolve()) if spec.out_dir
                          else str(workspace / "models" / job_id),
                          # Fixed now so a resume computes with the same thread count (float sums
                          # are split per thread; same threads, same bits).
                          "threads": spec.threads or os.cpu_count() or 1,
                          **(resolved(spec) if spec.kind == ADAPT else {})})
        atomic_write_text(jdir / "spec.json", json.dumps(asdict(spec), indent=2))
        _launch(workspace, job_id, fd, {"job_id": job_id, "created": _now(), "attempts": 0})
    return job_id


def check_frames_rendered(spec: JobSpec) -> None:
    """Refuse a job on a dataset whose frames are still being rendered in the background (`make run`
    serves the demo before its frames exist: core.synth.pending), saying how far they are, instead
    of a worker that fails on the first missing file."""
    from core.synth.pending import pending_frames

    for folder in [spec.data_dir, *spec.target]:
        progress = pending_frames(folder) if Path(folder).is_dir() else None
        if progress:
            done, total = progress
            raise JobError(f"{folder}: its frames are still being rendered in the background ({done:,} of "
                           f"{total:,} so far, {done / max(total, 1):.0%}); start the job again when all "
                           "are there (the workbench's sidebar shows how far they are)")


def _launch(workspace: Path, job_id: str, fd: int, status: dict[str, Any]) -> None:
    jdir = jobs_dir(workspace) / job_id
    mark_lock(fd, f"{job_id} {os.getpid()}")
    (jdir / "cancel").unlink(missing_ok=True)
    attempt = int(status.get("attempts", 0)) + 1
    # status.json is the worker's once it runs; the queued record is written before it exists.
    write_status(jdir, {**status, "state": "queued", "phase": "starting", "error": None, "attempts": attempt})
    proc = _spawn(workspace, job_id, fd)
    atomic_write_text(jdir / "launch.json", json.dumps(
        {"pid": proc.pid, "pid_start": _proc_start(proc.pid), "attempt": attempt, "at": _now()}))


def _worker_alive(jdir: Path, status: dict[str, Any]) -> bool:
    launch = read_json(jdir / "launch.json")
    if launch.get("attempt") != status.get("attempts"):
        # Between the queued record and launch.json: the starter is spawning right now.
        return time.time() - float(status.get("updated", 0)) < STARTING_GRACE_S
    return process_alive(launch.get("pid"), launch.get("pid_start"))


def job_status(workspace: str | Path, job_id: str) -> dict[str, Any]:
    """The job's status: ``state`` (queued|running|finished|failed|cancelled|interrupted), ``phase``,
    ``epoch``, ``epochs``, ``step``, ``steps_per_epoch``, ``loss``, ``val_f1``, ``eta_s``,
    ``images_per_s``, ``log`` (per-epoch metrics of the last checkpoint), ``error``, ``result``.
    """
    jdir = job_dir(workspace, job_id)
    status = read_json(jdir / "status.json")
    status.setdefault("state", "queued")
    status["job_id"] = job_id
    status["spec"] = read_json(jdir / "spec.json")
    if status["state"] in ACTIVE and not _worker_alive(jdir, status):
        # Re-read: the worker may have written its final state just before exiting.
        status.update(read_json(jdir / "status.json"))
        if status["state"] in ACTIVE:
            # Killed before it could record a cancel it was asked for: that is still a cancel.
            status["state"] = "cancelled" if (jdir / "cancel").exists() else "interrupted"
    if status["state"] == "running" and status.get("eta_s") is not None:
        status["eta_s"] = max(0.0, float(status["eta_s"]) - (time.time() - float(status["updated"])))
    status["log"] = read_json(jdir / "state" / "state.json").get("log", [])
    # The batch size and precision the run settled on ("auto" and 0 resolved), once it has.
    status["run"] = {k: v for k, v in read_json(jdir / "state" / "run.json").items() if k != "options"}
    status["cancel_requested"] = (jdir / "cancel").exists()
    return status


def list_jobs(workspace: str | Path) -> list[dict[str, Any]]:
    """Every job of the workspace, newest first, each as :func:`job_status` gives it."""
    root = jobs_dir(workspace)
    if not root.is_dir():
        return []
    ids = sorted((d.name for d in root.iterdir() if (d / "spec.json").is_file()), reverse=True)
    return [job_status(workspace, i) for i in ids]


def cancel_job(workspace: str | Path, job_id: str, force: bool = False,
               wait: float = CANCEL_WAIT_S) -> dict[str, Any]:
    """Stop the job and return its status, which then reads ``cancelled``.

    The worker is asked to stop (it records ``cancelled`` at its next step, or its watcher does
    within a second or two); one that has not within ``wait`` seconds is killed, and the cancel
    recorded here. ``force`` kills at once. A job whose worker is gone (interrupted) is marked
    cancelled directly.
    """
    jdir = job_dir(workspace, job_id)
    status = job_status(workspace, job_id)
    state = status["state"]
    if state in ("finished", "failed", "cancelled"):
        raise JobError(f"job {job_id} is already {state}")
    (jdir / "cancel").touch()
    if state in ACTIVE:
        launch = read_json(jdir / "launch.json")
        pid, start = launch.get("pid"), launch.get("pid_start")
        _signal(pid, start, signal.SIGKILL if force else signal.SIGTERM)
        if not force:
            deadline = time.time() + wait
            while time.time() < deadline:
                status = job_status(workspace, job_id)
                if status["state"] not in ACTIVE:
                    return status
                time.sleep(0.05)
            _signal(pid, start, signal.SIGKILL)  # stuck in one long operation: end it
        _wait_dead(pid, start)
    with workspace_lock(workspace):  # nobody may be resuming it meanwhile
        current = read_json(jdir / "status.json")
        write_status(jdir, {**current, "state": "cancelled", "phase": "cancelled", "finished": _now()})
    return job_status(workspace, job_id)


def _signal(pid: int | None, start: str | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if process_alive(pid, start):
            os.kill(int(pid), sig)


def _wait_dead(pid: int | None, start: str | None, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while process_alive(pid, start) and time.time() < deadline:
        time.sleep(0.05)


def resume_job(workspace: str | Path, job_id: str) -> str:
    """Restart an interrupted, cancelled or failed job from its last epoch checkpoint."""
    workspace = Path(workspace).resolve()
    jdir = job_dir(workspace, job_id)
    state = job_status(workspace, job_id)["state"]
    if state == "finished":
        raise JobError(f"job {job_id} has finished; start a new one to train again")
    if state in ACTIVE:
        raise JobError(f"job {job_id} is {state}; nothing to resume")
    check_frames_rendered(JobSpec.from_dict(read_json(jdir / "spec.json")))
    with workspace_lock(workspace) as fd:
        _launch(workspace, job_id, fd, read_json(jdir / "status.json"))
    return job_id


def wait_job(workspace: str | Path, job_id: str, timeout: float | None = None,
             poll: float = 0.2) -> dict[str, Any]:
    """Block until the job leaves queued/running and its worker has exited; returns its final status."""
    deadline = None if timeout is None else time.time() + timeout
    jdir = job_dir(workspace, job_id)
    while True:
        status = job_status(workspace, job_id)
        launch = read_json(jdir / "launch.json")
        if status["state"] not in ACTIVE and not process_alive(launch.get("pid"), launch.get("pid_start")):
            return status
        if deadline is not None and time.time() > deadline:
            raise TimeoutError(f"job {job_id} still {status['state']} after {timeout} s")
        time.sleep(poll)


def read_comparison(workspace: str | Path, job_id: str) -> dict[str, Any] | None:
    """The finished job's before/after comparison (see :mod:`core.compare`), if it made one."""
    path = job_dir(workspace, job_id) / "comparison.json"
    return read_json(path) if path.is_file() else None

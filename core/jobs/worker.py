"""The job worker: ``python -m core.jobs.worker <job_dir>`` runs one job and records its status.

It is the only writer of ``status.json`` while it lives. SIGTERM or a ``cancel`` file stop it at
the next training step (state ``cancelled``; the last epoch checkpoint stays for ``resume``).

A step on a loaded CPU can take a minute, and decoding frames, validation and the before/after
comparison have no step boundary at all, so a watcher thread also sees the request: when the
main thread has not stopped within ``CANCEL_GRACE_S`` it records ``cancelled`` and ends the
process. That is safe because every file a resume reads is written atomically, checkpoints
included (a kill -9 at any moment is already a supported interruption).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.jobs.runner import LOCK_FD_ENV, JobSpec, _now, _proc_start, read_json, write_status

STATUS_EVERY_S = 0.5  # per-step progress is throttled; phase changes are written at once
WATCH_EVERY_S = 0.2  # how often the watcher looks for a cancel request
CANCEL_GRACE_S = 1.5  # time the main thread gets to stop at a step boundary before the process ends


class Cancelled(Exception):
    pass


class Worker:
    def __init__(self, jdir: Path) -> None:
        self.jdir = jdir
        self.spec = JobSpec.from_dict(json.loads((jdir / "spec.json").read_text()))
        previous = read_json(jdir / "status.json")
        self.status: dict[str, Any] = {
            **previous, "state": "running", "phase": "starting", "pid": os.getpid(),
            "pid_start": _proc_start(os.getpid()), "started": _now(), "error": None,
        }
        self.stop_requested = False
        self._last_write = 0.0
        self.lock_fd: int | None = None
        # status.json has two writers (the main thread and the cancel watcher): one at a time, and
        # nothing after the final state.
        self._status_lock = threading.RLock()
        self._ended = threading.Event()

    def release_lock(self) -> None:
        """Let the next job start as soon as this one reports its end (not at interpreter exit)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def finish(self, info: dict[str, Any]) -> None:
        with self._status_lock:
            if self._ended.is_set():  # the watcher recorded the end already
                return
            self.release_lock()
            self.update({**info, "finished": _now(), "eta_s": None}, force=True)
            self._ended.set()

    # ---- status ---------------------------------------------------------------------------
    def update(self, info: dict[str, Any], force: bool = False) -> None:
        with self._status_lock:
            if self._ended.is_set():  # never overwrite the final state
                return
            phase_changed = info.get("phase") != self.status.get("phase")
            self.status.update({k: v for k, v in info.items() if v is not None or k == "eta_s"})
            now = time.time()
            if force or phase_changed or info.get("phase") == "epoch_done" or now - self._last_write > STATUS_EVERY_S:
                write_status(self.jdir, self.status)
                self._last_write = now

    def should_stop(self) -> bool:
        if (self.jdir / "cancel").exists():
            self.stop_requested = True
        return self.stop_requested

    def checkpoint_stop(self) -> None:
        if self.should_stop():
            raise Cancelled

    def watch_cancel(self) -> None:
        """The watcher thread: a cancel the main thread has not honoured within the grace ends the
        process, recording ``cancelled`` first."""
        while not self.should_stop():
            if self._ended.wait(WATCH_EVERY_S):
                return
        if self._ended.wait(CANCEL_GRACE_S):
            return  # stopped at a step boundary, the normal way
        with self._status_lock:
            if self._ended.is_set():
                return
            self.finish({"state": "cancelled", "phase": "cancelled"})
            print(f"cancel: stopped after {CANCEL_GRACE_S:g} s without reaching a step boundary", flush=True)
            sys.stderr.flush()
            os._exit(0)  # holding the status lock: the main thread writes nothing more

    # ---- the job --------------------------------------------------------------------------
    def run(self) -> int:
        from core.train.finetune import FinetuneOptions, finetune

        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop_requested", True))
        self.update({"phase": "starting"}, force=True)
        threading.Thread(target=self.watch_cancel, name="cancel-watcher", daemon=True).start()
        spec = self.spec
        try:
            import torch

            torch.set_num_threads(spec.threads or int(os.environ.get("SCENESCOPE_THREADS", 0))
                                  or os.cpu_count() or 1)
            self.checkpoint_stop()
            if spec.kind == "train-vqa":  # core.jobs.vqa_job: train the small VLM
                from core.jobs.vqa_job import run_vqa

                if run_vqa(self):
                    raise Cancelled
                self.finish({"state": "finished", "phase": "done"})
                return 0
            if spec.kind == "adapt":  # core.jobs.adapt_job: adapt to unlabelled footage
                from core.jobs.adapt_job import run_adapt

                if run_adapt(self):
                    raise Cancelled
                self.finish({"state": "finished", "phase": "done"})
                return 0
            options = FinetuneOptions.from_dict(spec.options)
            data_dir = spec.data_dir
            if spec.train_frames:
                from core.jobs.subset import subset_dataset

                self.update({"phase": "subset"}, force=True)
                data_dir = str(subset_dataset(spec.data_dir, self.jdir / "subset", spec.train_frames,
                                              seed=options.seed))
            result = finetune(data_dir, spec.base_model, spec.out_dir, options, on_progress=self.update,
                              should_stop=self.should_stop, state_dir=self.jdir / "state")
            if result.stopped:
                raise Cancelled
            self.status["result"] = result.to_dict()
            self.update({"phase": "trained", "val_f1": result.val_f1_after, "eta_s": None}, force=True)
            self.checkpoint_stop()
            if spec.compare:
                self.compare(result.model_name)
            self.finish({"state": "finished", "phase": "done"})
            return 0
        except Cancelled:
            self.finish({"state": "cancelled", "phase": "cancelled"})
            return 0
        except Exception as e:  # the job's failure is data for the UI, not a crash of the worker
            traceback.print_exc()
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.finish({"state": "failed", "phase": "failed", "error": f"{type(e).__name__}: {msg}"})
            return 1

    def compare(self, after_model: str) -> None:
        from core.compare import before_after
        from core.data import read_manifest

        spec = self.spec
        dataset = read_manifest(spec.data_dir)
        cmp = before_after(dataset, spec.base_model, after_model, self.jdir, eval_split=spec.eval_split,
                           k=spec.k, maps=spec.maps, emit=lambda info: (self.checkpoint_stop(), self.update(info)))
        atomic_write_text(self.jdir / "comparison.json", json.dumps(cmp.to_dict()))
        atomic_write_text(self.jdir / "comparison.md", cmp.to_markdown())
        self.status["comparison"] = {"macro_f1_before": cmp.macro_f1_before,
                                     "macro_f1_after": cmp.macro_f1_after, "delta": cmp.delta,
                                     "split": cmp.labels.get("split"), "index": str(self.jdir / "index")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m core.jobs.worker <job_dir>", file=sys.stderr)
        return 2
    worker = Worker(Path(argv[0]))
    fd = os.environ.pop(LOCK_FD_ENV, None)
    if fd is not None:
        # Held open while we work: the kernel releases the workspace lock when we die, however.
        os.set_inheritable(int(fd), False)
        worker.lock_fd = int(fd)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())

"""Background jobs: kill -9 then resume ends where an uninterrupted run ends; one job per workspace;
interrupted/cancelled states; the CLI's list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from toy import write_toy_dataset, write_toy_model

from core.jobs import (
    JobError,
    JobLockedError,
    cancel_job,
    job_status,
    list_jobs,
    resume_job,
    start_job,
    wait_job,
)
from core.jobs.runner import (
    JobSpec,
    check_frames_rendered,
    jobs_dir,
    process_alive,
    workspace_lock,
    write_status,
)
from core.train.finetune import FinetuneOptions, finetune

torch.set_num_threads(1)

OPTIONS = {"epochs": 3, "lr": 1e-3, "batch_size": 4, "workers": 1}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    return write_toy_dataset(root / "data", n=24), write_toy_model(root / "base")


def spec(toy, **kw) -> dict:
    data, base = toy
    return {"data_dir": str(data), "base_model": f"file:{base}", "options": OPTIONS, "compare": False,
            "threads": 1, **kw}


def wait_for(cond, timeout: float = 60.0, poll: float = 0.02):  # noqa: ANN202
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("condition not met in time")


def checkpoint_epoch(ws, job_id) -> int:
    path = jobs_dir(ws) / job_id / "state" / "state.json"
    try:
        return json.loads(path.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_9_then_resume_matches_the_uninterrupted_run(toy, tmp_path):
    data, base = toy
    ws = tmp_path / "ws"
    job = start_job(ws, spec(toy))
    with pytest.raises(JobLockedError, match=job):  # one training job per workspace
        start_job(ws, spec(toy))

    wait_for(lambda: checkpoint_epoch(ws, job) >= 1)
    launch = json.loads((jobs_dir(ws) / job / "launch.json").read_text())
    os.kill(launch["pid"], signal.SIGKILL)
    status = wait_for(lambda: (s := job_status(ws, job))["state"] == "interrupted" and s)
    assert 1 <= checkpoint_epoch(ws, job) < OPTIONS["epochs"], "killed too late to test a resume"
    assert status["log"] and status["log"][0]["epoch"] == 1

    resume_job(ws, job)  # the dead worker's lock is gone with it
    final = wait_job(ws, job, timeout=120)
    assert final["state"] == "finished", final.get("error")
    assert final["attempts"] == 2

    # The same run, uninterrupted, in this process with the same thread count.
    ref = finetune(data, f"file:{base}", tmp_path / "ref", FinetuneOptions(**OPTIONS))
    a = load_file(ref.model_dir / "open_clip_model.safetensors")
    b = load_file(jobs_dir(ws).parent / "models" / job / "open_clip_model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert [r["loss"] for r in final["log"]] == pytest.approx([r["loss"] for r in ref.log], rel=1e-5)
    assert final["result"]["model_name"].startswith("file:")


def test_cancel_stops_a_running_job_and_frees_the_workspace(toy, tmp_path):
    ws = tmp_path / "ws"
    job = start_job(ws, spec(toy, options={**OPTIONS, "epochs": 50}))
    wait_for(lambda: job_status(ws, job).get("phase") == "training")
    cancel_job(ws, job)
    final = wait_job(ws, job, timeout=60)
    assert final["state"] == "cancelled"
    with workspace_lock(ws):  # released by the worker on its way out
        pass
    with pytest.raises(JobError, match="already cancelled"):
        cancel_job(ws, job)
    assert [j["job_id"] for j in list_jobs(ws)] == [job]


def fake_job(ws, job_id: str, state: str, pid: int | None) -> None:
    d = jobs_dir(ws) / job_id
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"data_dir": "x", "base_model": "m"}))
    write_status(d, {"job_id": job_id, "state": state, "attempts": 1})
    (d / "launch.json").write_text(json.dumps({"pid": pid, "pid_start": None, "attempt": 1}))


def test_a_dead_worker_reads_as_interrupted_and_can_be_cancelled(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not process_alive(proc.pid)
    fake_job(tmp_path, "ft-dead", "running", proc.pid)
    assert job_status(tmp_path, "ft-dead")["state"] == "interrupted"
    assert cancel_job(tmp_path, "ft-dead")["state"] == "cancelled"
    fake_job(tmp_path, "ft-done", "finished", None)
    with pytest.raises(JobError, match="has finished"):
        resume_job(tmp_path, "ft-done")
    with pytest.raises(JobError, match="no job"):
        job_status(tmp_path, "ft-missing")


def test_a_live_worker_reads_as_running(tmp_path):
    fake_job(tmp_path, "ft-live", "running", os.getpid())
    assert job_status(tmp_path, "ft-live")["state"] == "running"


def test_lock_names_the_holder(tmp_path):
    with workspace_lock(tmp_path) as fd:
        os.pwrite(fd, b"ft-holder 1\n", 0)
        with pytest.raises(JobLockedError, match="ft-holder"), workspace_lock(tmp_path):
            pass
    with workspace_lock(tmp_path):  # free again
        pass


def test_bad_spec_fails_before_starting(toy, tmp_path):
    with pytest.raises(ValueError, match="unknown fine-tuning options"):
        start_job(tmp_path, spec(toy, options={"learning_rate": 1}))
    with pytest.raises(JobError, match="not found"):
        start_job(tmp_path, spec(toy, data_dir=str(tmp_path / "nowhere")))
    assert list_jobs(tmp_path) == []


def test_a_job_on_frames_still_rendering_is_refused_with_their_progress(toy, tmp_path):
    """`make run` serves the demo while its frames render (core.synth.pending): a job started or
    resumed then is refused saying so and how far they are, not failed on the first missing file."""
    from core.synth import write_synth_dataset
    from core.synth.pending import pending_frames, render_pending

    data = write_synth_dataset(tmp_path / "data", scenes=3, clips=0, seed=1, progress=False, frames=False)
    _, total = pending_frames(data)
    first = json.loads((data / "manifest.jsonl").read_text().splitlines()[0])["path"]
    (data / first).write_bytes(b"")  # one frame there: the message counts it
    with pytest.raises(JobError, match=rf"still being rendered .*\(1 of {total} so far"):
        start_job(tmp_path / "ws", spec(toy, data_dir=str(data)))
    assert list_jobs(tmp_path / "ws") == []
    fake_job(tmp_path / "ws", "ft-20260101-000000-abcd", "cancelled", None)
    (jobs_dir(tmp_path / "ws") / "ft-20260101-000000-abcd" / "spec.json").write_text(
        json.dumps(spec(toy, data_dir=str(data))))
    with pytest.raises(JobError, match="still being rendered"):
        resume_job(tmp_path / "ws", "ft-20260101-000000-abcd")
    (data / first).unlink()
    render_pending(data)
    check_frames_rendered(JobSpec(**spec(toy, data_dir=str(data))))  # all there: no longer refused


def test_cli_lists_jobs(tmp_path, capsys):
    from core.cli import main

    fake_job(tmp_path, "ft-20260101-000000-abcd", "finished", None)
    assert main(["jobs", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ft-20260101-000000-abcd" in out and "finished" in out
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])


def test_cancel_takes_effect_within_seconds_even_mid_step(toy, tmp_path, monkeypatch):
    """A cancel reads ``cancelled`` within 5 s and the state never goes back, even when the worker
    is stuck inside one long step (here: a 60 s sleep in the first step's progress callback)."""
    ws = tmp_path / "ws"
    # The worker is a fresh interpreter: a sitecustomize on its PYTHONPATH makes its steps block.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import time, core.train.finetune as f\n"
        "orig = f._Reporter.on_step\n"
        "def slow(self, info):\n"
        "    orig(self, info)\n"
        "    time.sleep(60)\n"
        "f._Reporter.on_step = slow\n")
    monkeypatch.setenv("PYTHONPATH", str(hook))
    job = start_job(ws, spec(toy, options={**OPTIONS, "epochs": 50}))
    wait_for(lambda: (s := job_status(ws, job)).get("phase") == "training" and s.get("step"))
    assert job_status(ws, job)["state"] == "running"
    t0 = time.time()
    seen = [cancel_job(ws, job)["state"]]
    assert seen == ["cancelled"] and time.time() - t0 < 5.0
    final = wait_job(ws, job, timeout=10)
    seen += [job_status(ws, job)["state"] for _ in range(5)]
    assert final["state"] == "cancelled" and set(seen) == {"cancelled"}
    assert "step boundary" in (jobs_dir(ws) / job / "output.log").read_text()  # the watcher ended it
    with workspace_lock(ws):  # and the workspace is free again
        pass


def test_a_quick_run_subset_is_a_random_share_of_train_and_val(toy, tmp_path):
    from core.data import read_manifest
    from core.jobs.subset import subset_dataset

    data, _ = toy
    full = read_manifest(data).frames.set_index("path")
    out = subset_dataset(data, tmp_path / "sub", train_frames=6, seed=3)
    sub = read_manifest(out).frames
    assert sorted(sub["split"].value_counts().items()) == [("train", 6), ("val", 1)]
    assert sub["path"].is_unique
    for row in sub.to_dict("records"):  # the same frames, labels and bytes as the original
        assert row == {"path": row["path"], **full.loc[row["path"]].to_dict()}
        assert (out / row["path"]).read_bytes() == (data / row["path"]).read_bytes()
    again = read_manifest(subset_dataset(data, tmp_path / "sub", train_frames=6, seed=3)).frames
    assert again["path"].tolist() == sub["path"].tolist()  # a resume trains on the same frames
    other = read_manifest(subset_dataset(data, tmp_path / "sub", train_frames=6, seed=4)).frames
    assert other["path"].tolist() != sub["path"].tolist()
    with pytest.raises(JobError, match="at least 2 frames"):
        start_job(tmp_path / "ws", spec(toy, train_frames=1))

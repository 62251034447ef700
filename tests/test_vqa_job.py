"""VLM training resumes from its per-epoch checkpoints (core.vqa.train_loop) and runs as a
``train-vqa`` job (core.jobs.vqa_job): a run stopped mid-stage and resumed, in process or through
the jobs machinery (cancel, then resume), ends with the same weights, bit for bit, as one that
never stopped. Toy tower, two dozen toy frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from toy import write_toy_dataset, write_toy_model

from core.jobs import JobError, cancel_job, resume_job, start_job, wait_job
from core.jobs.runner import jobs_dir

TINY = {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "vocab_size": 260, "text_epochs": 1,
        "stage1_epochs": 1, "stage2_epochs": 3, "max_rows": 48, "batch_size": 16, "seed": 3, "prefix_norm": True}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("vqajob")
    return write_toy_dataset(tmp / "data", n=24, size=(112, 64)), f"file:{write_toy_model(tmp / 'tower')}"


@pytest.fixture(scope="module")
def uninterrupted(world: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    from core.vqa.train_vlm import train_vqa

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the job below runs with threads=1: same count, same bits
    try:
        out = tmp_path_factory.mktemp("plain") / "vlm"
        report = train_vqa(world[0], out, vision=world[1], **TINY)
    finally:
        torch.set_num_threads(before)
    return {"report": report, "weights": load_file(out / "vlm.safetensors")}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_stopped_and_resumed_training_equals_uninterrupted(world, uninterrupted, tmp_path, one_torch_thread):
    from core.vqa.train_vlm import train_vqa

    calls = []

    def stop_at_step_13() -> bool:  # text 6 + align 3 steps, then the qa stage's epochs of 3: inside qa epoch 2
        calls.append(1)
        return len(calls) == 13

    state = tmp_path / "state"
    out = tmp_path / "vlm"
    assert train_vqa(world[0], out, vision=world[1], state_dir=state, should_stop=stop_at_step_13, **TINY) == {
        "stopped": True}
    meta = json.loads((state / "state.json").read_text())
    assert meta["stage"] == "qa" and [r["stage"] for r in meta["log"]] == ["text", "align", "qa"]
    assert not out.exists()
    report = train_vqa(world[0], out, vision=world[1], state_dir=state, **TINY)
    assert report["resumed_from_epoch"] == 3 and report["stages"] == uninterrupted["report"]["stages"]
    assert report["loss_after"] == uninterrupted["report"]["loss_after"]
    assert _same(load_file(out / "vlm.safetensors"), uninterrupted["weights"])
    with pytest.raises(ValueError, match="other options or data"):  # a checkpoint only resumes its own run
        train_vqa(world[0], tmp_path / "other", vision=world[1], state_dir=state, **{**TINY, "seed": 4})


def test_vqa_job_cancels_resumes_and_matches_uninterrupted(world, uninterrupted, tmp_path):
    ws = tmp_path / "ws"
    spec = {"kind": "train-vqa", "data_dir": str(world[0]), "base_model": world[1], "threads": 1,
            "out_dir": str(tmp_path / "vlm"), "options": TINY}
    with pytest.raises(JobError, match="'epochs' is unknown"):
        start_job(ws, {**spec, "options": {"epochs": 2}})
    with pytest.raises(JobError, match="hidden: 'wide' has the wrong type"):
        start_job(ws, {**spec, "options": {"hidden": "wide"}})

    job = start_job(ws, spec)
    assert job.startswith("vq-")
    state = jobs_dir(ws) / job / "state" / "state.json"
    import time

    deadline = time.time() + 120
    while not (state.is_file() and json.loads(state.read_text())["epoch"] >= 1) and time.time() < deadline:
        time.sleep(0.02)
    assert cancel_job(ws, job)["state"] == "cancelled"
    assert 1 <= json.loads(state.read_text())["epoch"] < 5, "cancelled too late to test a resume"
    resume_job(ws, job)
    final = wait_job(ws, job, timeout=180)
    assert final["state"] == "finished", final.get("error")
    assert final["attempts"] == 2 and [r["epoch"] for r in final["log"]] == [1, 2, 3, 4, 5]
    assert final["result"]["loss_after"] == uninterrupted["report"]["loss_after"]
    assert _same(load_file(tmp_path / "vlm" / "vlm.safetensors"), uninterrupted["weights"])
    assert json.loads((jobs_dir(ws) / job / "training.json").read_text())["resumed_from_epoch"] >= 1


def test_train_page_offers_vlm_training_and_shows_the_finished_vlm(tmp_path, monkeypatch, index_env):
    import os

    from streamlit.testing.v1 import AppTest

    from core.jobs.runner import write_status

    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    d = jobs_dir(tmp_path) / "vq-20260101-000000-done"
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"kind": "train-vqa", "data_dir": "x", "base_model": "m"}))
    write_status(d, {"state": "finished", "phase": "done", "attempts": 1, "result": {
        "model_dir": "/m/vlm", "kind": "train-vqa", "loss_before": 6.25, "loss_after": 0.5, "val_loss": 0.75}})
    (d / "launch.json").write_text(json.dumps({"pid": os.getpid(), "pid_start": None, "attempt": 1}))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "workbench.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["QA loss before"], metrics["QA loss after"], metrics["Held-out (val) loss"]) == (
        "6.250", "0.500", "0.750")
    assert any("--vlm /m/vlm" in c.value for c in at.caption)

    at.radio(key="train_kind").set_value("train-vqa").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="vqa_stage2_epochs").value == 3 and at.selectbox(key="vqa_data") is not None
    assert {"Language model width", "Learning rate (projector)"} <= {w.label for w in at.number_input}

"""Adaptation as a background job (issue 20): started, cancelled and resumed through the jobs
machinery like a fine-tuning job, ending with the before/after table on the target footage
(accuracy where a labels table gives labels). Toy model, toy frames: no real fixtures."""

from __future__ import annotations

import csv
import json

import pytest
from toy import write_toy_dataset, write_toy_model

from core.data import read_manifest
from core.jobs import JobError, cancel_job, job_status, resume_job, start_job, wait_job
from core.jobs.adapt_job import read_adapt_summary
from core.jobs.runner import jobs_dir
from core.train.adapt import read_frame_labels


def wait_for(cond, timeout: float = 90.0):  # noqa: ANN202
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := cond():
            return value
        time.sleep(0.02)
    raise TimeoutError("condition not met in time")


def test_adapt_job_cancels_resumes_and_reports_before_after(tmp_path):
    data = write_toy_dataset(tmp_path / "data", n=12)
    other = write_toy_dataset(tmp_path / "other", n=6, seed=5)
    target = other / "frames"
    frames = read_manifest(other).frames
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:  # weather known for the first three target frames only
        w = csv.writer(f)
        w.writerow(["file", "weather", "how_judged"])
        for _, row in frames.head(3).iterrows():
            w.writerow([row["path"].split("/")[-1], row["weather"], "toy truth"])
    ws = tmp_path / "ws"
    spec = {"kind": "adapt", "data_dir": str(data), "base_model": f"file:{write_toy_model(tmp_path / 'base')}",
            "target": [str(target)], "labels": str(labels), "threads": 1,
            "options": {"epochs": 4, "batch_size": 4, "lr": 3e-4, "workers": 1, "augment": False}}
    with pytest.raises(JobError, match="not found"):
        start_job(ws, {**spec, "target": [str(tmp_path / "missing")]})
    with pytest.raises(JobError, match="adaptation options"):
        start_job(ws, {**spec, "options": {"epochs": 0}})

    job = start_job(ws, spec)
    assert job.startswith("ad-")
    state = jobs_dir(ws) / job / "state" / "state.json"
    wait_for(lambda: state.is_file() and json.loads(state.read_text())["epoch"] >= 1)
    assert cancel_job(ws, job)["state"] == "cancelled"
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 4, "cancelled too late to test a resume"
    before = json.loads((jobs_dir(ws) / job / "state" / "before.json").read_text())

    resume_job(ws, job)
    final = wait_job(ws, job, timeout=180)
    assert final["state"] == "finished", final.get("error")
    assert final["attempts"] == 2 and [r["epoch"] for r in final["log"]] == [1, 2, 3, 4]
    assert final["result"]["model_name"].startswith("file:") and final["result"]["identity"]
    summary = read_adapt_summary(jobs_dir(ws) / job)
    assert summary["before"] == before  # measured once, not again after the resume
    for side in ("before", "after"):
        assert summary[side]["labelled"] == {"weather": 3}
        assert 0.0 <= summary[side]["accuracy"]["weather"] <= 1.0
        assert sum(summary[side]["votes"]["weather"].values()) == pytest.approx(1.0)
    table = (jobs_dir(ws) / job / "adapt.md").read_text()
    assert "| familiarity (median) |" in table and "| accuracy: weather (3 labelled frames) |" in table
    assert job_status(ws, job)["comparison"]["familiarity_median"]["before"] == before["familiarity_median"]


def test_frame_labels_table_refuses_bad_rows(tmp_path):
    from core.schema import default_schema

    bad = tmp_path / "labels.csv"
    bad.write_text("file,weather\na.jpg,sunny\nb.jpg,drizzle\n")
    with pytest.raises(ValueError, match=r"row 3: weather 'drizzle'"):
        read_frame_labels(bad, default_schema())
    bad.write_text("file,weather\na.jpg,sunny\na.jpg,rain\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_frame_labels(bad, default_schema())
    bad.write_text("file,weather,lighting\na.jpg,,day\n")
    assert read_frame_labels(bad, default_schema()) == {"a.jpg": {"lighting": "day"}}

"""The Train page for people (issue 21): the picker and header show each job's current state once,
options read as words with sensible choices, a quick run, measured speed and what limits it, and
a cancel that the page shows within seconds. Plus app.words, the shared number wording."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import SmallIndex
from streamlit.testing.v1 import AppTest

from app import navigation, words
from core.jobs.runner import jobs_dir, write_status

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
TIMEOUT = 120  # the first run in a process loads torch and the model

needs_jobs = pytest.mark.skipif(not navigation.available(navigation.PAGES[5]),
                                reason="fine-tuning engine (core.jobs) absent")


def _train_page() -> AppTest:
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _header(at: AppTest, job_id: str) -> str:
    heads = [m.value for m in at.markdown if m.value.startswith("####") and job_id in m.value]
    assert len(heads) == 1, heads
    return heads[0]


def _fake_running_job(ws: Path, job_id: str) -> Path:
    """A job whose worker is this test process (alive), mid-training, with its run settings."""
    d = jobs_dir(ws) / job_id
    (d / "state").mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"data_dir": "x", "base_model": "m", "threads": 1,
                                             "options": {"device": "cpu"}}))
    (d / "state" / "run.json").write_text(json.dumps({"batch_size": 8, "precision": "fp32"}))
    write_status(d, {"state": "running", "phase": "training", "attempts": 1, "epoch": 1, "epochs": 2,
                     "step": 3, "steps_per_epoch": 10, "loss": 1.25, "images_per_s": 1.23, "eta_s": 1320.0})
    (d / "launch.json").write_text(json.dumps({"pid": os.getpid(), "pid_start": None, "attempt": 1}))
    return d


@needs_jobs
def test_picker_and_header_show_the_current_state_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        index_env: SmallIndex) -> None:
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    job = "ft-20260101-000000-live"
    d = _fake_running_job(tmp_path, job)
    at = _train_page()
    assert at.selectbox(key="train_pick").options == [f"{job} · running · training"]
    assert _header(at, job).endswith(f"`{job}` · running · training")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Training images/s"] == "1.2"
    left, unit = metrics["Time left"].split()  # 1320 s, counting down since the status was written
    assert unit == "min" and 20.0 <= float(left) <= 22.0
    limits = [c.value for c in at.caption if c.value.startswith("Speed limited by")]
    assert limits and "CPU-bound: 1 thread on" in limits[0] and "fp32 · batch 8" in limits[0]
    assert any("step 3 of 10" in p.proto.text for p in at.get("progress"))
    # Measured speed turns into estimates for this dataset's run sizes.
    assert any("Measured 1.2 training images/s" in c.value and "per epoch" in c.value for c in at.caption)

    # The worker records its end; the next draw shows it in the picker and the header, once.
    write_status(d, {"state": "cancelled", "phase": "cancelled", "attempts": 1, "epoch": 1, "epochs": 2})
    at.run()
    assert not at.exception
    assert at.selectbox(key="train_pick").options == [f"{job} · cancelled"]
    head = _header(at, job)
    assert head.count("cancelled") == 1 and head.endswith("· cancelled")
    assert at.button(key=f"train_resume_{job}") and not [b for b in at.button if b.key == f"train_cancel_{job}"]


@needs_jobs
def test_options_read_as_words_and_a_quick_run_is_one_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            index_env: SmallIndex) -> None:
    from core.train.resources import resolve_precision

    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    at = _train_page()
    # No raw field names, no free text for choices.
    labels = [w.label for kind in ("number_input", "selectbox", "checkbox", "multiselect", "text_input")
              for w in at.get(kind) if (w.key or "").startswith("train_opt_")]
    assert labels and not [x for x in labels if "_" in x], labels
    assert not [w.key for w in at.text_input if (w.key or "").startswith("train_opt_")]
    precision = at.selectbox(key="train_opt_precision")
    assert precision.value == "auto"
    assert precision.options[0].startswith(f"Automatic ({resolve_precision('auto', 'cpu')} on this CPU")
    batch = at.selectbox(key="train_opt_batch_size")
    assert batch.value == 0 and batch.options[0] == "Automatic (fits memory)" and "64 images per step" in batch.options
    assert at.selectbox(key="train_opt_device").options[0].startswith("CPU (")
    assert at.selectbox(key="train_opt_save_dtype").options[0].startswith("32-bit float")
    assert at.number_input(key="train_opt_warmup_fraction").value == pytest.approx(5.0)  # percent

    at.radio(key="train_preset").set_value("quick").run()
    assert not at.exception and not at.warning
    assert at.number_input(key="train_opt_epochs").value == 1
    assert at.checkbox(key="train_opt_validate").value is False and at.checkbox(key="train_maps").value is False
    assert at.selectbox(key="train_frames").value == 256
    at.radio(key="train_preset").set_value("recipe").run()
    assert at.number_input(key="train_opt_epochs").value == 8 and at.checkbox(key="train_maps").value is True
    assert at.selectbox(key="train_frames").value is None and at.selectbox(key="train_frames").options[0].startswith("All")


@needs_jobs
def test_start_then_cancel_shows_cancelled_within_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          index_env: SmallIndex) -> None:
    from toy import write_toy_dataset, write_toy_model

    from core.jobs import job_status

    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    write_toy_dataset(tmp_path / "toy", n=12)
    write_toy_model(tmp_path / "models" / "toy")
    at = _train_page()
    at.selectbox(key="train_data").set_value(str(tmp_path / "toy")).run()
    at.selectbox(key="train_base").set_value(f"file:{tmp_path / 'models' / 'toy'}")
    at.radio(key="train_preset").set_value("quick").run()
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error
    job = at.session_state["train_job"]
    spec = job_status(tmp_path, job)["spec"]
    assert spec["options"]["epochs"] == 1 and spec["options"]["validate"] is False and spec["maps"] is False
    assert spec["train_frames"] == 256
    assert at.selectbox(key="train_pick").value == job
    assert _header(at, job).split("· ", 1)[1].startswith(("queued", "running"))

    t0 = time.time()
    at.button(key=f"train_cancel_{job}").click().run()
    assert not at.exception and not at.error
    status = job_status(tmp_path, job)
    assert status["state"] == "cancelled" and status["updated"] - t0 < 5.0
    assert at.selectbox(key="train_pick").options[0] == f"{job} · cancelled"
    assert _header(at, job).endswith("· cancelled")


def test_words_say_numbers_as_people_read_them() -> None:
    assert [words.count(n, "frame") for n in (0, 1, 2, 1204)] == ["0 frames", "1 frame", "2 frames", "1,204 frames"]
    assert words.count(1, "query", "queries") == "1 query" and words.count(3, "query", "queries") == "3 queries"
    assert words.seconds(1.4800000000000004) == "1.5 s" and words.seconds(0.30000000000000004, 2) == "0.30 s"
    assert words.span(1.0, 1.0) == "at 1.0 s" and words.span(1.02, 1.04) == "at 1.0 s"
    assert words.span(1.0, 2.5) == "1.0–2.5 s"
    assert [words.duration(s) for s in (4.25, 45, 1320, 7200, 7500)] == ["4.2 s", "45 s", "22.0 min", "2 h",
                                                                         "2 h 5 min"]
    assert words.number(1.4800000000000004) == "1.48" and words.number(0.0005) == "0.0005"


def test_speed_limits_name_the_image_size(tmp_path: Path) -> None:
    from core.jobs.limits import image_size, limits_note

    cfg = json.loads((Path(__file__).resolve().parents[1] / "assets" / "scenescope-tiny" / "open_clip_config.json")
                     .read_text())["model_cfg"]["vision_cfg"]["image_size"]
    assert image_size("scenescope-tiny") == tuple(cfg)
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"vision_cfg": {"image_size": 224}}}))
    assert image_size(f"file:{tmp_path}") == (224, 224)
    assert image_size("openclip:ViT-B-32/openai") is None and image_size(f"file:{tmp_path / 'gone'}") is None
    note = limits_note({"spec": {"base_model": f"file:{tmp_path}", "threads": 2}, "run": {"batch_size": 8}})
    assert "CPU-bound: 2 threads on" in note and "batch 8 · 224×224 px images" in note

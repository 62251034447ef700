"""Fine-tuning defaults belong to the starting model: openclip: models take the CLIP scene paper's
lr, the bundled model the value its folder records with the bench that chose it, file: models their
own value or the paper's; a run with lr unset trains at that value and the help shows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from toy import write_toy_dataset, write_toy_model

from core.train.model_defaults import (
    DEFAULTS_FILE,
    finetune_defaults,
    model_folder,
    read_defaults_file,
    write_defaults_file,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_JSON = ROOT / "assets" / "scenescope-tiny" / DEFAULTS_FILE


def test_openclip_models_take_the_papers_lr():
    lr, source = finetune_defaults("openclip:ViT-B-32/openai")["lr"]
    assert lr == 1e-5 and "CLIP scene paper" in source and "openclip" in source


def test_the_bundled_model_takes_the_value_its_folder_records_with_its_bench():
    recorded = json.loads(BUNDLED_JSON.read_text())["finetune_defaults"]["lr"]
    lr, source = finetune_defaults("scenescope-tiny")["lr"]
    assert lr == recorded["value"] == 5e-4
    assert "bench/finetune_weak.py" in source and "+5.4" in source and DEFAULTS_FILE in source
    card = (ROOT / "assets" / "scenescope-tiny" / "MODEL_CARD.md").read_text()
    assert "## Fine-tuning defaults" in card and "5e-4" in card and "bench/finetune_weak.py" in card


def test_file_models_carry_their_own_value_or_fall_back_to_the_papers(tmp_path):
    model = write_toy_model(tmp_path / "toy")
    lr, source = finetune_defaults(f"file:{model}")["lr"]
    assert lr == 1e-5 and f"no {DEFAULTS_FILE} in toy" in source
    write_defaults_file(model, {"lr": (3e-4, "measured by hand")})
    assert finetune_defaults(f"file:{model}") == {"lr": (3e-4, f"toy/{DEFAULTS_FILE}: measured by hand")}
    # a weights file names its folder, as the registry reads it
    assert finetune_defaults(f"file:{model / 'open_clip_model.safetensors'}")["lr"][0] == 3e-4


@pytest.mark.parametrize("body, message", [
    ("{not json", "expected"),
    ('{"finetune_defaults": {"lr": {"value": -1}}}', "positive number"),
    ('{"finetune_defaults": {"lr": {"value": "5e-4"}}}', "positive number"),
    ('{"finetune_defaults": {"epochs": {"value": 3}}}', "not an option the model sets"),
])
def test_a_bad_defaults_file_is_one_line_naming_it(tmp_path, body, message):
    (tmp_path / DEFAULTS_FILE).write_text(body)
    with pytest.raises(ValueError, match=message) as e:
        read_defaults_file(tmp_path)
    assert str(tmp_path / DEFAULTS_FILE) in str(e.value) and "\n" not in str(e.value)


def test_bundled_folders_agree_with_the_registry_and_unknown_names_are_refused():
    from core.models.registry import BUNDLED

    assert {name: model_folder(name) for name in BUNDLED} == {n: Path(p) for n, p in BUNDLED.items()}
    assert model_folder("openclip:ViT-B-32/openai") is None
    with pytest.raises(ValueError, match="unknown model"):
        finetune_defaults("ViT-B-32")


def test_options_and_defaults_import_without_torch():
    code = ("import sys, core.train.options, core.train.model_defaults as m; "
            "m.finetune_defaults('scenescope-tiny'); assert 'torch' not in sys.modules, 'torch loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_with_lr_unset_trains_at_the_models_default(tmp_path):
    """Stopped before its first step: run.json holds the options the run trains with."""
    from core.train.finetune import FinetuneOptions, finetune

    data = write_toy_dataset(tmp_path / "data", n=12)
    base = write_toy_model(tmp_path / "base")
    fast = {"epochs": 1, "batch_size": 4, "workers": 1, "validate": False}

    def lr_of(name: str, **options: float) -> tuple[float, dict]:
        res = finetune(data, f"file:{base}", tmp_path / name, FinetuneOptions(**fast, **options),
                       should_stop=lambda: True)
        assert res.stopped
        return json.loads((tmp_path / f"{name}.state" / "run.json").read_text())["options"]["lr"], res.model_defaults

    assert lr_of("paper") == (1e-5, {"lr": [1e-5, finetune_defaults(f"file:{base}")["lr"][1]]})
    write_defaults_file(base, {"lr": (2e-3, "its own")})
    assert lr_of("own") == (2e-3, {"lr": [2e-3, f"base/{DEFAULTS_FILE}: its own"]})
    assert lr_of("explicit", lr=7e-4) == (7e-4, {})


def test_finetune_help_shows_the_default_and_where_it_comes_from(capsys):
    from core.cli import main

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse rewraps the help text, also at hyphens
    assert "Defaultfor--modelscenescope-tiny:0.0005(scenescope-tiny/finetune_defaults.json:bench/" in out

"""The bundled model's card renders from core/templates/model_card.md exactly as the f-string it
replaced did: tests/data/model_card/MODEL_CARD.*.md were written once by the old
``core.quality.write_model_card`` from the recorded quality.json / training.json beside them (its
measurement replaced by those files, load time 0.37 s, folder size 9,876,543 bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.model_card import render_model_card
from core.train.model_defaults import write_defaults_file

DATA = Path(__file__).with_name("data") / "model_card"


def _render(training: str, model_dir: str | Path = "assets/scenescope-tiny") -> str:
    return render_model_card(model_dir, json.loads((DATA / "quality.json").read_text()),
                             json.loads((DATA / training).read_text()),
                             json.loads((DATA / "open_clip_config.json").read_text()),
                             size_mb=9_876_543 / 1e6, load_s=0.37, scenes=3000, seed=1001)


@pytest.mark.parametrize("case, training", [("bundled", "training.json"), ("grown", "training.grown.json")])
def test_the_template_renders_what_the_old_f_string_wrote(case, training, monkeypatch):
    monkeypatch.chdir(DATA)  # "assets/scenescope-tiny" does not exist here: no fine-tuning defaults
    assert _render(training) == (DATA / f"MODEL_CARD.{case}.md").read_text()


def test_a_folder_with_fine_tuning_defaults_gets_their_section(tmp_path):
    write_defaults_file(tmp_path, {"lr": (5e-4, "bench/finetune_weak.py: +5.4 points")})
    card = _render("training.json", tmp_path)
    old = (DATA / "MODEL_CARD.bundled.md").read_text().replace("assets/scenescope-tiny", str(tmp_path))
    section = card[card.index("## Fine-tuning defaults"):card.index("## Quality")]
    assert "- lr 0.0005: bench/finetune_weak.py: +5.4 points" in section
    assert card.replace(section, "") == old  # the rest is unchanged


def test_the_bundled_card_matches_its_template(monkeypatch):
    """assets/scenescope-tiny/MODEL_CARD.md is what the template renders from its own records
    (only the measured load time and the folder size may differ)."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the card names its folder as `scenescope model-card` was given it
    folder = root / "assets" / "scenescope-tiny"
    rendered = render_model_card(folder.relative_to(root), json.loads((folder / "quality.json").read_text()),
                                 json.loads((folder / "training.json").read_text()),
                                 json.loads((folder / "open_clip_config.json").read_text()),
                                 size_mb=0, load_s=0, scenes=3000, seed=1001)
    card = (folder / "MODEL_CARD.md").read_text()
    skip = "MB on disk. Loads in"
    assert [x for x in rendered.splitlines() if skip not in x] == [x for x in card.splitlines() if skip not in x]

"""`scenescope --schema PATH`: a user schema reaches synth, index, eval, classify and import; a bad
file is one error line naming it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import yaml
from PIL import Image

import core.models  # noqa: F401  (registers the scenescope-tiny config)
from core.cli import main
from core.models.registry import CONFIGS
from core.schema import DEFAULT_SCHEMA_PATH, default_schema, load_schema
from core.train import save_model_dir


def dropped_attribute() -> str:
    """The last attribute that no rule refers to: removing it leaves a valid, renderable schema."""
    referenced = {other for a in default_schema() for v in a.values for other in v.only_with}
    return [a.name for a in default_schema() if a.name not in referenced][-1]


def write_custom_schema(path: Path) -> Path:
    """The bundled schema without :func:`dropped_attribute` (its sentence goes: it names it)."""
    raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    drop = dropped_attribute()
    raw["name"] = "custom"
    raw["attributes"] = [a for a in raw["attributes"] if a["name"] != drop]
    raw["caption_order"] = [n for n in raw["caption_order"] if n != drop]
    raw.pop("sentence")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom schema, a synthetic dataset rendered with it and its index (random tiny model)."""
    tmp = tmp_path_factory.mktemp("cli-schema")
    schema = write_custom_schema(tmp / "custom.yaml")
    torch.manual_seed(0)
    save_model_dir(open_clip.create_model("scenescope-tiny"),
                   json.loads((CONFIGS / "scenescope-tiny.json").read_text()), tmp / "model")
    assert main(["--schema", str(schema), "synth", "--out", str(tmp / "data"), "--scenes", "40",
                 "--size", "128x72", "--seed", "3"]) == 0
    assert main(["--schema", str(schema), "index", "--data", str(tmp / "data"), "--out", str(tmp / "idx"),
                 "--model", f"file:{tmp / 'model'}", "--split", "all"]) == 0
    return tmp


def test_eval_and_classify_report_exactly_the_custom_attributes(flow, capsys):
    custom = load_schema(flow / "custom.yaml").names
    assert dropped_attribute() not in custom and len(custom) == len(default_schema().names) - 1
    row = json.loads((flow / "data" / "manifest.jsonl").read_text().splitlines()[0])
    assert dropped_attribute() not in row and set(custom) <= set(row)  # synth rendered with it
    capsys.readouterr()
    base = ["--schema", str(flow / "custom.yaml")]
    assert main([*base, "eval", "--index", str(flow / "idx"), "--data", str(flow / "data"), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["attributes"]) == custom
    image = flow / "data" / row["path"]
    # also accepted after the command
    assert main(["classify", "--schema", str(flow / "custom.yaml"), "--index", str(flow / "idx"), str(image),
                 "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["labels"]) == custom
    # The bundled schema wants the column this index lacks: the schema really is what was used.
    assert main(["eval", "--index", str(flow / "idx"), "--data", str(flow / "data")]) == 2
    assert dropped_attribute() in one_error_line(capsys)


def test_import_table_follows_the_custom_schema(tmp_path, capsys):
    schema_path = write_custom_schema(tmp_path / "custom.yaml")
    schema, rng = load_schema(schema_path), random.Random(0)
    rows = []
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", **schema.sample(rng)})
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["import", "table", "--root", str(tmp_path), "--labels", str(labels)]
    assert main(["--schema", str(schema_path), *args]) == 0
    written = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
    assert set(schema.names) <= set(written) and dropped_attribute() not in written
    capsys.readouterr()
    assert main(args) == 2  # the bundled schema requires the dropped column
    assert dropped_attribute() in one_error_line(capsys)


def _twice(raw: dict) -> None:
    raw["attributes"].append(raw["attributes"][0])


def _list_for_mapping(raw: dict) -> None:
    raw["attributes"][0]["values"][0]["only_with"] = ["not", "a", "mapping"]


@pytest.mark.parametrize("breakage, expected", [
    (None, "cannot read schema"),  # no such file
    ("attributes: [unclosed\n  - x: {", "cannot read schema"),  # invalid YAML (a multi-line error)
    ("- just\n- a list\n", "malformed schema"),
    (_twice, "defined twice"),  # a rule error that does not name the file by itself
    (_list_for_mapping, "invalid schema"),
])
def test_bad_schema_file_is_one_error_line_naming_it(tmp_path, capsys, breakage, expected):
    path = tmp_path / "broken.yaml"
    if isinstance(breakage, str):
        path.write_text(breakage)
    elif breakage is not None:
        raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
        breakage(raw)
        path.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["--schema", str(path), "import", "table", "--root", str(tmp_path),
                 "--labels", str(tmp_path / "labels.csv")]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {path}: ") and expected in err

"""The `scenescope` command-line contract: synth -> index -> classify -> eval, errors as one line."""

import json
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch

import core.models  # noqa: F401  (registers the scenescope-tiny config)
from core.cli import build_parser, main
from core.models.registry import CONFIGS
from core.schema import default_schema
from core.train import save_model_dir

FIXTURE_CLIP = Path(__file__).resolve().parents[1] / "../shared/fixtures/udacity-lanelines/test_videos/solidWhiteRight.mp4"


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_model_dir(open_clip.create_model("scenescope-tiny"), json.loads((CONFIGS / "scenescope-tiny.json").read_text()),
                   tmp / "model")
    model = f"file:{tmp / 'model'}"
    assert main(["synth", "--out", str(tmp / "data"), "--scenes", "40", "--clips", "1", "--seed", "3"]) == 0
    assert main(["index", "--data", str(tmp / "data"), "--out", str(tmp / "idx"), "--model", model,
                 "--split", "all"]) == 0
    return tmp


def test_classify_image_json(flow, capsys):
    image = sorted((flow / "data" / "images").glob("*.jpg"))[0]
    capsys.readouterr()
    assert main(["classify", "--index", str(flow / "idx"), str(image), "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "image" and len(out["neighbors"]) == 3
    assert set(out["labels"]) == set(default_schema().names)


@pytest.mark.skipif(not FIXTURE_CLIP.exists(), reason="../shared/fixtures is absent")
def test_classify_real_clip_gives_timeline(flow, capsys):
    capsys.readouterr()
    assert main(["classify", "--index", str(flow / "idx"), str(FIXTURE_CLIP), "--fps", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "clip" and 8 <= len(out["frames"]) <= 10
    for name in default_schema().names:
        segs = [s for s in out["segments"] if s["attribute"] == name]
        assert segs[0]["start_s"] == 0.0 and segs[-1]["end_s"] >= 8.0


def test_eval_json_contract(flow, capsys):
    capsys.readouterr()
    assert main(["eval", "--index", str(flow / "idx"), "--data", str(flow / "data"), "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["macro_f1"] <= 1.0
    for name in default_schema().names:
        att = report["attributes"][name]
        assert {"precision", "recall", "f1", "per_class"} <= set(att)


def test_vote_space_prompts_reaches_eval_and_classify(flow, capsys):
    from core.data import read_manifest
    from core.eval import evaluate
    from core.index import embed_dataset
    from core.pipeline import open_index
    from core.predict import class_text_embeddings, vote_batch

    capsys.readouterr()
    args = ["eval", "--index", str(flow / "idx"), "--data", str(flow / "data"), "--split", "test", "--json"]
    assert main([*args, "--vote-space", "prompts"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, store = open_index(flow / "idx", None, default_schema())
    test = read_manifest(flow / "data").split("test")
    votes = vote_batch(store, embed_dataset(test, model, progress=False), k=5,
                       prompt_space=class_text_embeddings(model, store.schema))
    expect = evaluate([test.labels(i) for i in range(len(test))], [v.leaning() for v in votes], test.schema)
    assert report["macro_f1"] == pytest.approx(expect["macro_f1"])
    image = sorted((flow / "data" / "images").glob("*.jpg"))[0]
    assert main(["classify", "--index", str(flow / "idx"), str(image), "--vote-space", "prompts", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["labels"]) == set(default_schema().names)
    with pytest.raises(SystemExit):
        main([*args, "--vote-space", "pixels"])


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    for name in commands:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
    assert {"synth", "index", "classify", "eval", "models"} <= set(commands)


def test_errors_are_one_line_and_non_zero(tmp_path):
    r = subprocess.run([sys.executable, "-m", "core.cli", "classify", "--index", str(tmp_path / "nowhere"),
                        str(tmp_path / "x.jpg")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error:")


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "scenescope-tiny"


def test_train_default_options_are_the_recipe_fields():
    from dataclasses import asdict, fields

    from core.cli import build_parser, given_options
    from core.train.default import DefaultRecipe

    a = build_parser().parse_args(["train-default", "--epochs", "3", "--attribute-loss", "0"])
    assert (a.epochs, a.attribute_loss, a.scenes) == (3, 0.0, None)  # None: the recipe's own value
    assert DefaultRecipe(**given_options(a, DefaultRecipe)) == DefaultRecipe(epochs=3, attribute_loss=0.0)
    a = build_parser().parse_args(["train-default", "--refine-head-weights", "3,2,2,1,1,1"])
    assert a.refine_head_weights == (3.0, 2.0, 2.0, 1.0, 1.0, 1.0) == DefaultRecipe().refine_head_weights

    # Every field has its option: a recipe with every value changed parses back to itself.
    def changed(v: object) -> object:
        return tuple(x * 2 for x in v) if isinstance(v, tuple) else v + 1

    other = DefaultRecipe(**{k: changed(v) for k, v in asdict(DefaultRecipe()).items()})
    argv = [f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
            for k, v in asdict(other).items()]
    a = build_parser().parse_args(["train-default", *argv])
    assert DefaultRecipe(**given_options(a, DefaultRecipe)) == other
    assert len(argv) == len(fields(DefaultRecipe))


def test_dataclass_options_refuse_a_field_type_they_cannot_parse():
    import argparse
    from dataclasses import dataclass, field

    from core.cli import add_dataclass_options

    @dataclass
    class Odd:
        table: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match="Odd.table"):
        add_dataclass_options(argparse.ArgumentParser(), Odd)


def test_the_model_card_reproduce_options_of_a_grown_recipe_parse_back_to_it():
    from dataclasses import asdict

    from core.cli import given_options
    from core.model_card import _grow_options
    from core.train.default import DefaultRecipe

    recipe = DefaultRecipe(grow_epochs=6, grow_image_size=(144, 256), grow_head_weights=(4, 2, 2, 1, 1, 1))
    a = build_parser().parse_args(["train-default", *_grow_options(asdict(recipe)).split()])
    assert DefaultRecipe(**given_options(a, DefaultRecipe)) == recipe

"""The question bank: answers consistent with each scene's labels and the schema's stage rules.

The references are read from hsd.yaml with plain yaml (not core.schema), so a loader bug cannot
hide behind itself.
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest
import yaml

from core.schema import DEFAULT_SCHEMA_PATH, SchemaError, default_schema, load_schema
from core.synth import clip_plan
from core.vqa.answer import match_question
from core.vqa.drivelm import GROUPS, question_type, read_qa_table, split_options
from core.vqa.questions import (
    Intent,
    clip_questions,
    intents,
    question_bank,
    questions_of,
    scene_questions,
)

RAW = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
ATTRS = {a["name"]: a for a in RAW["attributes"]}
VALUES = {a["name"]: {v["name"]: v for v in a["values"]} for a in RAW["attributes"]}
RULES = RAW["questions"]["planning"]["rules"]
NO_ANSWER = RAW["questions"]["no_answer"]
YES, NO = RAW["questions"]["yes_no"]
# The roles, found as the module documents them: values naming a place, values saying what the ego does.
PLACE = next(a for a, vs in VALUES.items() if any("named" in v for v in vs.values()))
STAGE = next(a for a, vs in VALUES.items() if any("does" in v for v in vs.values()))
EVENTS = [v for v, d in VALUES[STAGE].items() if "will" in d]  # in YAML order = the order a drive meets them


def first_rule_action(labels: dict) -> str:
    for r in RULES:
        if all(labels[a] in allowed for a, allowed in (r.get("when") or {}).items()):
            return r["do"]
    raise AssertionError("no rule matched")


def allowed_stages(place: str) -> list[str]:
    return VALUES[PLACE][place]["only_with"][STAGE]


def check_scene_row(row: dict, labels: dict) -> None:
    it = row["intent"]
    assert question_type(row["question"], row["answer"]) == row["type"]  # DriveLM's own reading of the form
    if row["type"] == "multiple_choice":
        stem, opts = split_options(row["question"])
        assert opts == [o.rstrip(".") + "." for o in row["options"]] and row["options"][-1] == NO_ANSWER
        chosen = row["options"][ord(row["answer"]) - ord("A")]
    if it["kind"] == "attribute":
        value = VALUES[it["attribute"]][labels[it["attribute"]]]
        if row["type"] == "multiple_choice":
            assert chosen == value["display"]
        else:
            word = value.get("answer", value["display"].lower())
            assert word in row["answer"]
            others = [v.get("answer", v["display"].lower()) for n, v in VALUES[it["attribute"]].items()
                      if n != labels[it["attribute"]]]
            assert not any(f" {o}." in row["answer"] for o in others)
    elif it["kind"] == "yes_no":
        assert row["answer"] == (YES if labels[it["attribute"]] == it["value"] else NO)
        assert VALUES[it["attribute"]][it["value"]].get("yes_no", True) is not False
    elif it["kind"] == "facet":
        facet = ATTRS[it["attribute"]]["facets"][it["facet"]]
        truth = facet["answers"][labels[it["attribute"]]]
        assert (chosen if row["type"] == "multiple_choice" else row["answer"]) == truth
    elif it["kind"] == "planning":
        action = first_rule_action(labels)
        if row["type"] == "multiple_choice":
            assert chosen == action
        else:
            assert action[1:].rstrip(".") in row["answer"]
    else:
        raise AssertionError(f"a {it['kind']} question about a single scene")


def test_scene_questions_agree_with_labels_and_cover_every_attribute():
    schema = default_schema()
    rng = random.Random(7)
    kinds = set()
    for n in range(150):
        labels = schema.sample(rng, {PLACE: list(VALUES[PLACE])[n % len(VALUES[PLACE])]})
        rows = scene_questions(schema, labels, rng, f"s{n}")
        for row in rows:
            check_scene_row(row, labels)
            kinds.add((row["group"], row["intent"]["kind"], row["type"]))
        asked = {r["intent"].get("attribute") for r in rows if r["intent"]["kind"] == "attribute"}
        assert asked == set(ATTRS)  # every attribute, every scene
        yes_no = [r for r in rows if r["type"] == "yes_no"]
        assert {r["answer"] for r in yes_no} == {YES, NO}
    assert {k[0] for k in kinds} == {"perception", "planning"}
    assert ("perception", "facet", "multiple_choice") in kinds


@pytest.mark.parametrize("place", list(VALUES[PLACE]))
def test_clip_questions_follow_the_stage_rules(place):
    schema = default_schema()
    rng = random.Random(list(VALUES[PLACE]).index(place))
    plan = clip_plan(schema, random.Random(3), 2.0, 8.0, place=place)
    frames = [f["labels"] for f in plan]
    rows = clip_questions(schema, frames, rng, "c0")
    assert {r["group"] for r in rows} <= {"prediction", "behavior"}
    shows = [i for i, f in enumerate(frames) if f[STAGE] in EVENTS]
    prediction = [r for r in rows if r["group"] == "prediction"]
    if shows:
        key = shows[0]
        now = frames[key][STAGE]
        own = [r for r in prediction if r["intent"]["value"] == place]
        # every later stage the rules allow at this place is asked about, and nothing else
        expected = [s for s in EVENTS if s in allowed_stages(place) and EVENTS.index(s) > EVENTS.index(now)]
        assert [r["intent"]["stage"] for r in own] == expected
        for r in prediction:
            assert r["frame"] == str(key) and r["type"] == "yes_no"
            later = any(f[PLACE] == r["intent"]["value"] and f[STAGE] == r["intent"]["stage"] for f in frames[key + 1:])
            assert r["answer"] == (YES if later else NO)
            assert r["intent"]["stage"] in allowed_stages(r["intent"]["value"])
        assert any(r["answer"] == NO for r in prediction)  # one about a place the clip lacks
    else:
        assert not prediction
    behave = [r for r in rows if r["group"] == "behavior"]
    assert {r["type"] for r in behave} == {"multiple_choice", "free_form"}
    mc = next(r for r in behave if r["type"] == "multiple_choice")
    said = mc["options"][ord(mc["answer"]) - ord("A")]
    seen = [s for s in VALUES[STAGE] if any(f[STAGE] == s and f[PLACE] == place for f in frames)] if shows \
        else [frames[0][STAGE]]
    for s in VALUES[STAGE]:
        assert (VALUES[STAGE][s]["does"] in said) == (s in seen), (s, said)
    assert VALUES[PLACE][place]["named"] in said


def test_every_question_the_schema_asks_is_read_back_as_itself():
    schema = default_schema()
    checked = 0
    for it in intents(schema):
        for q in questions_of(schema, it):
            got, matched, why = match_question(q, schema)
            assert got == it, (q, got, matched, why)
            checked += 1
    assert checked > 100


def test_synth_qa_writes_a_question_bank_beside_the_manifest(tmp_path):
    from core.cli import main

    assert main(["synth", "--out", str(tmp_path / "d"), "--scenes", "12", "--clips", "2", "--size", "96x54",
                 "--seed", "4", "--qa"]) == 0
    qa = read_qa_table(tmp_path / "d")  # DriveLM's QA columns, as the importer's table
    raw = [json.loads(x) for x in (tmp_path / "d" / "qa.jsonl").read_text().splitlines()]
    manifest = [json.loads(x) for x in (tmp_path / "d" / "manifest.jsonl").read_text().splitlines()]
    assert qa["id"].is_unique and len(qa) == len(raw)
    assert set(qa["group"]) == set(GROUPS)
    by_clip: dict[str, list[dict]] = {}
    for m in manifest:
        by_clip.setdefault(m["clip_id"], []).append(m)
    for r in raw:
        frames = sorted(by_clip[r["scene"]], key=lambda m: m["frame_index"])
        assert r["split"] == frames[0]["split"]
        assert r["kind"] == ("scene" if len(frames) == 1 else "clip")
        if r["kind"] == "scene":
            check_scene_row(r, {a: frames[0][a] for a in ATTRS})
    # the bank is a pure function of the labels and the seed
    again = question_bank(manifest, default_schema(), seed=4)
    assert [r["question"] for r in again] == [r["question"] for r in raw]


def test_rules_and_facets_naming_unknown_values_are_refused(tmp_path):
    raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    raw["questions"]["planning"]["rules"][0]["when"][PLACE] = ["no_such_place"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError, match="planning rule 1.*no_such_place"):
        load_schema(tmp_path / "a.yaml")
    raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    raw["attributes"][0]["facets"][0]["answers"]["nowhere"] = "Two"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError, match="facet names unknown values"):
        load_schema(tmp_path / "b.yaml")


def test_a_schema_without_question_forms_still_asks_about_every_attribute(tmp_path):
    raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    raw.pop("questions")
    for a in raw["attributes"]:
        for k in ("question", "answer", "yes_no", "facets"):
            a.pop(k, None)
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))
    schema = load_schema(tmp_path / "plain.yaml")
    assert {i.kind for i in intents(schema)} == {"attribute"}
    rows = scene_questions(schema, schema.sample(random.Random(0)), random.Random(0))
    assert {r["intent"]["attribute"] for r in rows} == set(ATTRS)
    assert Intent("attribute", "weather") in intents(schema)


def test_no_attribute_or_value_is_spelled_in_the_vqa_modules():
    names = set(ATTRS) | {v for vs in VALUES.values() for v in vs}
    root = Path(__file__).resolve().parents[1] / "core" / "vqa"
    for module in ("questions.py", "answer.py", "evaluate.py"):
        tree = ast.parse((root / module).read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        spelled = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and id(n) not in docstrings and n.value in names}
        assert not spelled, (module, spelled)


def test_clip_place_skips_frames_whose_place_vote_abstained() -> None:
    """Voted frames (the Ask page's clip timeline) can leave the place unknown: those frames show no
    place, and the others still decide it."""
    from core.schema import UNKNOWN
    from core.vqa.questions import clip_place, event_stages, place_attribute, stage_attribute

    schema = default_schema()
    place, stage = place_attribute(schema), stage_attribute(schema)
    event = event_stages(schema)[0]
    value = place.value_names[-1]
    frames = [{place.name: UNKNOWN, stage.name: event}, {place.name: value, stage.name: event},
              {place.name: UNKNOWN, stage.name: event}]
    assert clip_place(schema, frames) == (value, [1])
    assert clip_place(schema, [frames[0], frames[2]]) is None

"""The attribute schema: HSD's rules, validation messages, sentences, captions, user YAML files.

Most tests iterate the schema. The HSD facts pinned in ``HSD`` below are the exception: they
check that the YAML encodes the Honda Scenes taxonomy correctly, so they must spell it out.
"""

from __future__ import annotations

import random
import re
import textwrap

import pytest

from core.schema import UNKNOWN, SchemaError, default_schema, load_schema

SCHEMA = default_schema()

# HSD taxonomy facts (the only names spelled in this file).
HSD = {
    "place": "place",
    "stage": "stage",
    "driving_only": "background",
    "approaching_only": "zebra_crossing",
    "gore_prefixes": ("merge_gore", "branch_gore"),
    "no_gore_stage": "entering",
    "driving": "driving",
    "approaching": "approaching",
}


def _base() -> dict[str, str]:
    """A valid label set to vary one or two attributes from."""
    return SCHEMA.sample(random.Random(0))


# ---- HSD stage rules -------------------------------------------------------------------------
def test_background_only_while_driving():
    place, stage = HSD["place"], HSD["stage"]
    assert SCHEMA.allowed(stage, {place: HSD["driving_only"]}) == [HSD["driving"]]
    # And the other way round: plain driving means no place feature.
    assert SCHEMA.allowed(place, {stage: HSD["driving"]}) == [HSD["driving_only"]]


def test_zebra_only_when_approaching():
    assert SCHEMA.allowed(HSD["stage"], {HSD["place"]: HSD["approaching_only"]}) == [HSD["approaching"]]


def test_merges_and_branches_are_never_entered():
    place, stage = HSD["place"], HSD["stage"]
    gores = [v for v in SCHEMA[place].value_names if v.startswith(HSD["gore_prefixes"])]
    assert len(gores) == 4
    for g in gores:
        allowed = SCHEMA.allowed(stage, {place: g})
        assert HSD["no_gore_stage"] not in allowed and HSD["driving"] not in allowed
        assert HSD["approaching"] in allowed
        labels = {**_base(), place: g, stage: HSD["no_gore_stage"]}
        with pytest.raises(SchemaError, match=f"{place}={g}.*{stage}={HSD['no_gore_stage']}"):
            SCHEMA.check(labels)


def test_allowed_agrees_with_check_for_every_pair():
    base = _base()
    for a in SCHEMA:
        for b in SCHEMA:
            if a.name == b.name:
                continue
            for va in a.value_names:
                allowed = SCHEMA.allowed(b.name, {a.name: va})
                for vb in b.value_names:
                    # Checking only the pair: the other attributes unknown.
                    labels = {x: UNKNOWN for x in SCHEMA.names} | {a.name: va, b.name: vb}
                    ok = True
                    try:
                        SCHEMA.check(labels, allow_unknown=True)
                    except SchemaError:
                        ok = False
                    assert ok == (vb in allowed), (a.name, va, b.name, vb)
    assert SCHEMA.is_valid(base)


def test_sample_is_always_valid():
    rng = random.Random(7)
    for _ in range(300):
        assert SCHEMA.is_valid(SCHEMA.sample(rng))


# ---- check messages --------------------------------------------------------------------------
def test_check_errors_name_attribute_and_value():
    base = _base()
    for a in SCHEMA:
        with pytest.raises(SchemaError, match=rf"'bogus'.*'{a.name}'"):
            SCHEMA.check({**base, a.name: "bogus"})
        missing = {k: v for k, v in base.items() if k != a.name}
        with pytest.raises(SchemaError, match=f"missing attribute '{a.name}'"):
            SCHEMA.check(missing)
        with pytest.raises(SchemaError, match=f"'{UNKNOWN}'.*'{a.name}'"):
            SCHEMA.check({**base, a.name: UNKNOWN})
        SCHEMA.check({**base, a.name: UNKNOWN}, allow_unknown=True)
    with pytest.raises(SchemaError, match="unknown attribute 'bogus'"):
        SCHEMA["bogus"]


def test_rule_error_names_both_sides():
    for a in SCHEMA:
        for v in a.values:
            for other, allowed in v.only_with.items():
                for w in SCHEMA[other].value_names:
                    if w in allowed:
                        continue
                    labels = {**_base(), a.name: v.name, other: w}
                    with pytest.raises(SchemaError) as info:
                        SCHEMA.check(labels)
                    msg = str(info.value)
                    assert a.name in msg and v.name in msg and other in msg and w in msg


# ---- sentences -------------------------------------------------------------------------------
def test_sentence_round_trip_every_value():
    rng = random.Random(1)
    for a in SCHEMA:
        for v in a.value_names:
            for _ in range(3):
                labels = SCHEMA.sample(rng, fixed={a.name: v})
                sentence = SCHEMA.to_sentence(labels)
                assert sentence[0].isupper()
                assert SCHEMA.from_sentence(sentence) == labels
                assert SCHEMA.from_sentence(sentence.lower() + ".") == labels


def test_sentence_every_place_with_every_allowed_stage():
    rng = random.Random(2)
    place, stage = HSD["place"], HSD["stage"]
    n = 0
    for p in SCHEMA[place].value_names:
        for s in SCHEMA.allowed(stage, {place: p}):
            labels = SCHEMA.sample(rng, fixed={place: p, stage: s})
            assert SCHEMA.from_sentence(SCHEMA.to_sentence(labels)) == labels
            n += 1
    assert n > len(SCHEMA[place].values)


def test_sentence_optional_part_and_errors():
    # The optional [..] tail can be left out: its attributes then parse as unknown.
    tail = re.search(r"\[([^\]]*)\]", SCHEMA.sentence_template)
    assert tail, "the HSD sentence has an optional part"
    optional_attrs = re.findall(r"\{(\w+)\}", tail.group(1))
    labels = _base()
    full = SCHEMA.to_sentence(labels)
    cut = full[: full.lower().rindex(tail.group(1).split("{")[0].lower())]
    parsed = SCHEMA.from_sentence(cut)
    for a in SCHEMA.names:
        assert parsed[a] == (UNKNOWN if a in optional_attrs else labels[a])
    real = "Approaching Construction zone on highway road in cloudy weather on dry surface"
    assert sum(v != UNKNOWN for v in SCHEMA.from_sentence(real).values()) == len(SCHEMA.names) - 1
    for bad in ["", "Driving somewhere nice", full + " and then some"]:
        with pytest.raises(SchemaError, match="does not follow"):
            SCHEMA.from_sentence(bad)


# ---- captions and CLIP's 77 tokens -----------------------------------------------------------
@pytest.fixture(scope="module")
def token_count():
    open_clip = pytest.importorskip("open_clip", reason="open_clip not installed")
    tok = open_clip.get_tokenizer("ViT-B-32")

    def count(text: str) -> int:
        # A long context so an over-long caption shows its true length instead of being cut.
        return int((tok([text], context_length=256) != 0).sum())

    return count


def test_longest_caption_fits_77_tokens(token_count):
    # Phrases are joined with ", " in caption order: the caption of every attribute's
    # longest paraphrase bounds every value combination and every random paraphrase.
    longest = [max((p for v in SCHEMA[n].values for p in v.phrases), key=token_count) for n in SCHEMA.caption_order]
    caption = ", ".join(longest)
    assert token_count(caption) <= 77, caption
    rng = random.Random(3)
    for _ in range(50):
        cap = SCHEMA.caption(SCHEMA.sample(rng), rng)
        assert token_count(cap) <= token_count(caption)


def test_caption_skips_unknown_and_is_deterministic_without_rng():
    labels = _base()
    cap = SCHEMA.caption(labels)
    assert cap == SCHEMA.caption(labels)
    assert cap.split(", ") == [SCHEMA[n].value(labels[n]).phrases[0] for n in SCHEMA.caption_order]
    first = SCHEMA.caption_order[0]
    assert len(SCHEMA.caption({**labels, first: UNKNOWN}).split(", ")) == len(SCHEMA.caption_order) - 1


def test_prompts_and_display():
    for a in SCHEMA:
        for v in a.values:
            prompts = a.prompts(v.name)
            assert len(prompts) == len(a.templates) * len(v.phrases)
            assert all(p.strip() for p in prompts)
            assert SCHEMA.display(a.name, v.name) == v.display
        assert SCHEMA.display(a.name, UNKNOWN) == UNKNOWN


def test_from_alias_is_case_insensitive_and_falls_back_to_unknown():
    n = 0
    for a in SCHEMA:
        for v in a.values:
            for source, aliases in v.aliases.items():
                for al in aliases:
                    assert a.from_alias(source, f"  {al.upper()} ") == v.name
                    n += 1
        assert a.from_alias("nowhere", "anything") == UNKNOWN
    assert n > 0


# ---- user YAML schemas -----------------------------------------------------------------------
CUSTOM = textwrap.dedent(
    """
    name: tiny
    sentence: "{mood} sky over a {ground} field"
    attributes:
      - name: mood
        display: Mood
        templates: ["a {} day"]
        values:
          - {name: calm, phrases: ["calm", "still"], aliases: {other: [quiet]}}
          - {name: stormy, display: Stormy, sentence: storm, only_with: {ground: [muddy]}}
      - name: ground
        values:
          - {name: green}
          - {name: muddy}
    """
)


def test_user_yaml_schema(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(CUSTOM)
    s = load_schema(path)
    assert s.name == "tiny" and s.names == ["mood", "ground"]
    assert s.caption_order == ("mood", "ground")
    mood = s["mood"]
    assert mood.value("calm").display == "calm"  # display defaults to the name
    assert mood.prompts("calm") == ["a calm day", "a still day"]
    assert mood.from_alias("other", "Quiet") == "calm"
    assert s.allowed("ground", {"mood": "stormy"}) == ["muddy"]
    labels = {"mood": "stormy", "ground": "muddy"}
    assert s.to_sentence(labels) == "Storm sky over a muddy field"
    assert s.from_sentence("storm sky over a muddy field") == labels
    with pytest.raises(SchemaError, match="mood=stormy cannot go with ground=green"):
        s.check({"mood": "stormy", "ground": "green"})
    assert load_schema(None) is default_schema()


@pytest.mark.parametrize(
    "text",
    [
        "attributes: [{name: a}]",  # no values
        "attributes: [{values: [{name: x}]}]",  # no attribute name
        "attributes: [{name: a, values: [{name: x}, {name: x}]}]",  # repeated value
        "attributes: 5",
        "[1, 2, 3]",
        "",
        "attributes: [{name: a, values: [{name: x}]}]\ncaption_order: [b]",
        "attributes: [{name: a, values: [{name: x}]}]\nsentence: '{b} road'",
        "attributes: [{name: a, values: [{name: x}]\n  bad: : yaml",
    ],
)
def test_malformed_schema_raises_schema_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError):
        load_schema(path)


def test_missing_schema_file_names_it(tmp_path):
    with pytest.raises(SchemaError, match="nope.yaml"):
        load_schema(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "text",
    [
        # only_with naming an attribute or a value that does not exist is silently ignored.
        "attributes: [{name: a, values: [{name: x, only_with: {b: [y]}}]}]",
        "attributes: [{name: a, values: [{name: x}]}, {name: b, values: [{name: y, only_with: {a: [z]}}]}]",
        # Two attributes with one name, or a value named like the unknown marker.
        "attributes: [{name: a, values: [{name: x}]}, {name: a, values: [{name: y}]}]",
        f"attributes: [{{name: a, values: [{{name: {UNKNOWN}}}]}}]",
    ],
)
def test_schema_cross_references_are_checked(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError):
        load_schema(path)

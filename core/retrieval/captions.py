"""Clip-level captions from a clip's event and context, through the schema's ``clip_captions`` block.

Every word of a caption comes from the schema file: the templates (``train`` ones for training,
held-out ``test`` ones for evaluation), the event forms, and each value's prompt ``phrases``. The
code only fills slots named after attributes, so it spells no attribute or value.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from core.schema import DEFAULT_SCHEMA_PATH, Schema, SchemaError
from core.synth.clips import attribute_with, value_with

TEMPLATE_SETS = ("train", "test")
EVENT_SLOTS = ("first", "last", "event")  # slots that are not attribute names


@dataclass(frozen=True)
class CaptionForms:
    span: tuple[str, ...]  # the place shown at several stages: {first} ... {last}
    one: tuple[str, ...]  # at one stage
    none: tuple[str, ...]  # no place shown
    train: tuple[str, ...]
    test: tuple[str, ...]

    def templates(self, which: str) -> tuple[str, ...]:
        if which not in TEMPLATE_SETS:
            raise ValueError(f"template set must be one of {TEMPLATE_SETS}, got {which!r}")
        return self.train if which == "train" else self.test


def _slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def parse_caption_forms(raw: object, schema: Schema, origin: str) -> CaptionForms:
    """The ``clip_captions`` block; refuses slots that name neither an attribute nor an event slot,
    and a test template that is also a train template (it would not be held out)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("event"), Mapping):
        raise SchemaError(f"{origin}: clip_captions needs an event block and train/test templates")
    ev = raw["event"]
    forms = CaptionForms(*(tuple(str(t) for t in (ev.get(k) or ())) for k in ("span", "one", "none")),
                         *(tuple(str(t) for t in (raw.get(k) or ())) for k in TEMPLATE_SETS))
    known = set(schema.names) | set(EVENT_SLOTS)
    for name, group in (("span", forms.span), ("one", forms.one), ("none", forms.none),
                        ("train", forms.train), ("test", forms.test)):
        if not group:
            raise SchemaError(f"{origin}: clip_captions {name} has no template")
        for t in group:
            bad = _slots(t) - known
            if bad:
                raise SchemaError(f"{origin}: clip_captions {name} template {t!r} names unknown slots {sorted(bad)}")
    shared = set(forms.train) & set(forms.test)
    if shared:
        raise SchemaError(f"{origin}: clip_captions test templates repeat train ones: {sorted(shared)}")
    return forms


@lru_cache(maxsize=4)
def _forms_from(path: str, schema: Schema) -> CaptionForms:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SchemaError(f"{path}: cannot read clip captions ({' '.join(str(e).split())})") from None
    return parse_caption_forms((raw or {}).get("clip_captions"), schema, path)


def caption_forms(schema: Schema, path: str | Path | None = None) -> CaptionForms:
    """The caption forms declared in the schema file (default: the bundled hsd.yaml)."""
    return _forms_from(str(path or DEFAULT_SCHEMA_PATH), schema)


def clip_caption(schema: Schema, event: Mapping, template: str, rng: random.Random,
                 forms: CaptionForms | None = None) -> str:
    """One caption of a clip's ``event`` (``core.synth.drives.clip_event``) with ``template``.

    Each attribute slot gets a random paraphrase (a value ``phrase``) drawn from ``rng``; the
    event slot is the span/one/none form for the stages the clip shows.
    """
    forms = forms or caption_forms(schema)
    place_attr, stage_attr = attribute_with(schema, "feature"), attribute_with(schema, "distance")
    stages = list(event["stages"])

    def phrase(attr: str, value: str) -> str:
        return rng.choice(schema[attr].value(value).phrases)

    slots = {name: phrase(name, value) for name, value in event["context"].items()}
    slots[place_attr.name] = phrase(place_attr.name, event["feature"])
    slots[stage_attr.name] = phrase(stage_attr.name, stages[0])
    slots["first"], slots["last"] = phrase(stage_attr.name, stages[0]), phrase(stage_attr.name, stages[-1])
    shown = event["feature"] != value_with(place_attr, "feature", "none")
    group = (forms.span if len(stages) > 1 else forms.one) if shown else forms.none
    slots["event"] = rng.choice(group).format(**slots)
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def clip_captions(schema: Schema, event: Mapping, which: str, count: int, rng: random.Random,
                  forms: CaptionForms | None = None) -> list[str]:
    """``count`` captions of one clip from the ``which`` templates (cycled, paraphrases drawn anew)."""
    forms = forms or caption_forms(schema)
    templates = list(forms.templates(which))
    rng.shuffle(templates)
    return [clip_caption(schema, event, templates[i % len(templates)], rng, forms) for i in range(count)]


__all__ = ["TEMPLATE_SETS", "CaptionForms", "caption_forms", "clip_caption", "clip_captions", "parse_caption_forms"]

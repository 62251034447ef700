"""Loading a schema from YAML, refusing files whose names clash or whose rules point at nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from core.schema.types import (
    UNKNOWN,
    Attribute,
    Facet,
    ObjectForms,
    QuestionForms,
    Rule,
    Schema,
    SchemaError,
    Value,
)

DEFAULT_SCHEMA_PATH = Path(__file__).with_name("hsd.yaml")


def _parse(raw: dict, origin: str) -> Schema:
    try:
        attrs = []
        for a in raw["attributes"]:
            values = tuple(
                Value(
                    name=v["name"],
                    display=v.get("display", v["name"]),
                    phrases=tuple(v.get("phrases") or [v.get("display", v["name"])]),
                    sentence=v.get("sentence", v.get("display", v["name"])),
                    aliases={k: tuple(x) for k, x in (v.get("aliases") or {}).items()},
                    only_with={k: tuple(x) for k, x in (v.get("only_with") or {}).items()},
                    render=dict(v.get("render") or {}),
                    answer=str(v.get("answer") or v.get("display", v["name"]).lower()),
                    yes_no=v.get("yes_no", True) is not False,
                    named=v.get("named"),
                    will=v.get("will"),
                    does=v.get("does"),
                )
                for v in a["values"]
            )
            if len({v.name for v in values}) != len(values):
                raise SchemaError(f"attribute {a['name']!r} repeats a value name")
            attrs.append(
                Attribute(
                    name=a["name"],
                    display=a.get("display", a["name"]),
                    values=values,
                    templates=tuple(a.get("templates") or ["{}"]),
                    sources=dict(a.get("sources") or {}),
                    questions=tuple(a.get("question") or [f"What is the {a.get('display', a['name']).lower()}?"]),
                    answers=tuple(a.get("answer") or ["{}"]),
                    yes_no=a.get("yes_no"),
                    facets=tuple(Facet(tuple(f["question"]), {str(k): str(x) for k, x in f["answers"].items()})
                                 for f in a.get("facets") or []),
                )
            )
        names = [a.name for a in attrs]
        _check_references(attrs)
        qa = _question_forms(raw.get("questions") or {})
        _check_question_forms(attrs, qa)
        sentence = raw.get("sentence") or " ".join("{" + n + "}" for n in names)
        return Schema(raw.get("name", origin), attrs, sentence, raw.get("caption_order") or names, qa)
    except (KeyError, TypeError) as e:
        raise SchemaError(f"{origin}: malformed schema ({e!r})") from None
    except AttributeError as e:
        raise SchemaError(f"{origin}: invalid schema: a list where a mapping belongs ({e})") from None
    except SchemaError as e:  # rule errors: name the file they come from
        raise SchemaError(f"{origin}: invalid schema: {e}") from None


def _check_references(attrs: list[Attribute]) -> None:
    """Refuse schemas whose names clash or whose rules point at nothing: such rules would be ignored."""
    by_name: dict[str, Attribute] = {}
    for a in attrs:
        if a.name in by_name:
            raise SchemaError(f"attribute {a.name!r} is defined twice")
        by_name[a.name] = a
    for a in attrs:
        for v in a.values:
            if v.name == UNKNOWN:
                raise SchemaError(f"attribute {a.name!r}: {UNKNOWN!r} is reserved for missing labels")
            for other, allowed in v.only_with.items():
                if other not in by_name:
                    raise SchemaError(f"{a.name}={v.name}: only_with names unknown attribute {other!r}")
                missing = set(allowed) - set(by_name[other].value_names)
                if missing:
                    raise SchemaError(f"{a.name}={v.name}: only_with names unknown {other} values {sorted(missing)}")


def _question_forms(raw: dict) -> QuestionForms:
    plan, pred, beh = raw.get("planning") or {}, raw.get("prediction") or {}, raw.get("behavior") or {}
    yes, no = raw.get("yes_no") or ("Yes", "No")
    default = QuestionForms()
    return QuestionForms(
        yes=str(yes), no=str(no),
        no_answer=str(raw.get("no_answer") or default.no_answer),
        choose=str(raw.get("choose") or default.choose),
        planning_questions=tuple(plan.get("question") or ()),
        planning_answers=tuple(plan.get("answer") or ("{}",)),
        rules=tuple(Rule({k: tuple(x) for k, x in (r.get("when") or {}).items()}, str(r["do"]))
                    for r in plan.get("rules") or []),
        prediction_questions=tuple(pred.get("question") or ()),
        behavior_questions=tuple(beh.get("question") or ()),
        behavior_answers=tuple(beh.get("answer") or ()),
        objects=_object_forms(raw.get("objects") or {}),
    )


def _object_forms(raw: dict) -> ObjectForms:
    d = ObjectForms()
    frame = tuple(float(x) for x in raw.get("frame") or d.frame)
    if len(frame) != 2 or min(frame) <= 0:
        raise SchemaError(f"questions.objects.frame must be [width, height] > 0; got {raw.get('frame')!r}")
    return ObjectForms(
        questions=tuple(raw.get("question") or ()),
        answer=str(raw.get("answer") or d.answer), answer_one=str(raw.get("answer_one") or d.answer_one),
        none=str(raw.get("none") or d.none), unplaced=str(raw.get("unplaced") or d.unplaced),
        classes={str(k): str(v) for k, v in (raw.get("classes") or {}).items()},
        where=tuple(raw.get("where") or ()), camera=str(raw.get("camera") or d.camera), frame=frame,  # type: ignore[arg-type]
        most=int(raw.get("max") or d.most), min_area=float(raw.get("min_area") or d.min_area),
    )


def _check_question_forms(attrs: list[Attribute], qa: QuestionForms) -> None:
    """Refuse facets and planning rules that name unknown attributes or values (they would never apply)."""
    by_name = {a.name: a for a in attrs}
    for a in attrs:
        for f in a.facets:
            missing = set(f.answers) - set(a.value_names)
            if missing:
                raise SchemaError(f"attribute {a.name!r}: a facet names unknown values {sorted(missing)}")
    for n, r in enumerate(qa.rules, start=1):
        for other, allowed in r.when.items():
            if other not in by_name:
                raise SchemaError(f"planning rule {n}: names unknown attribute {other!r}")
            missing = set(allowed) - set(by_name[other].value_names)
            if missing:
                raise SchemaError(f"planning rule {n}: names unknown {other} values {sorted(missing)}")


def load_schema(path: str | Path | None = None) -> Schema:
    """Load a schema from YAML; ``None`` gives the default HSD schema."""
    if path is None:
        return default_schema()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as e:
        # YAML errors span several lines; one line keeps CLI errors to one line too.
        raise SchemaError(f"{p}: cannot read schema ({' '.join(str(e).split())})") from None
    return _parse(raw, str(p))


@lru_cache(maxsize=1)
def default_schema() -> Schema:
    return _parse(yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text()), str(DEFAULT_SCHEMA_PATH))


__all__ = ["DEFAULT_SCHEMA_PATH", "default_schema", "load_schema"]

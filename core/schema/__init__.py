"""Declarative attribute schema: the single source of attribute names and values.

Everything that needs an attribute name (renderer, captions, prompts, importers, metrics, UI)
reads it from a :class:`Schema`; the default one is ``hsd.yaml`` beside this file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

UNKNOWN = "unknown"
DEFAULT_SCHEMA_PATH = Path(__file__).with_name("hsd.yaml")

Labels = Mapping[str, str]


class SchemaError(ValueError):
    """A schema file or a set of labels that does not follow the schema."""


@dataclass(frozen=True)
class Value:
    name: str
    display: str
    phrases: tuple[str, ...]
    sentence: str
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    only_with: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Parameters the synthetic renderer draws this value with (it reads nothing else).
    render: Mapping[str, object] = field(default_factory=dict)
    # Question forms (core.vqa): the value in a free-form answer and in its yes/no question;
    # `yes_no` False: never asked about; `named`/`will`/`does`: place and stage in clip questions.
    answer: str = ""
    yes_no: bool = True
    named: str | None = None
    will: str | None = None
    does: str | None = None


@dataclass(frozen=True)
class Facet:
    """A question whose answer follows from an attribute's value, asked only for the values listed."""

    questions: tuple[str, ...]
    answers: Mapping[str, str]  # value name -> answer


@dataclass(frozen=True)
class Rule:
    """A planning rule: ``action`` when every attribute in ``when`` has one of its listed values."""

    when: Mapping[str, tuple[str, ...]]
    action: str

    def matches(self, labels: Labels) -> bool:
        return all(labels.get(a, UNKNOWN) in allowed for a, allowed in self.when.items())


@dataclass(frozen=True)
class QuestionForms:
    """The schema's ``questions`` block: answer words, planning rules and clip question templates."""

    yes: str = "Yes"
    no: str = "No"
    no_answer: str = "No definite answer"
    choose: str = "Please select the correct answer from the following options:"
    planning_questions: tuple[str, ...] = ()
    planning_answers: tuple[str, ...] = ("{}",)
    rules: tuple[Rule, ...] = ()
    prediction_questions: tuple[str, ...] = ()
    behavior_questions: tuple[str, ...] = ()
    behavior_answers: tuple[str, ...] = ()

    def action(self, labels: Labels) -> str | None:
        """The first matching rule's action, or None when no rule matches."""
        return next((r.action for r in self.rules if r.matches(labels)), None)

    @property
    def actions(self) -> list[str]:
        """Every distinct action, in rule order."""
        return list(dict.fromkeys(r.action for r in self.rules))


@dataclass(frozen=True)
class Attribute:
    name: str
    display: str
    values: tuple[Value, ...]
    templates: tuple[str, ...]
    sources: Mapping[str, str] = field(default_factory=dict)
    # Question forms (core.vqa): paraphrases asking for the value, free-form answer templates
    # ({} = a value's `answer`), the yes/no template, and facets.
    questions: tuple[str, ...] = ()
    answers: tuple[str, ...] = ("{}",)
    yes_no: str | None = None
    facets: tuple[Facet, ...] = ()

    @property
    def value_names(self) -> list[str]:
        return [v.name for v in self.values]

    def value(self, name: str) -> Value:
        for v in self.values:
            if v.name == name:
                return v
        raise SchemaError(
            f"unknown value {name!r} for attribute {self.name!r}; expected one of {self.value_names}"
        )

    def index(self, name: str) -> int:
        return self.value_names.index(self.value(name).name)

    def display_of(self, name: str) -> str:
        return UNKNOWN if name == UNKNOWN else self.value(name).display

    def prompts(self, value: str) -> list[str]:
        """Prompt ensemble for one value: every template applied to every phrase."""
        v = self.value(value)
        return [t.format(p) for t in self.templates for p in v.phrases]

    def from_alias(self, source: str, raw: str) -> str:
        """Map a label from an external dataset (``source``) to our value name, or UNKNOWN."""
        key = raw.strip().lower()
        for v in self.values:
            if key in (a.lower() for a in v.aliases.get(source, ())):
                return v.name
        return UNKNOWN


class Schema:
    """An ordered set of attributes plus the rules that tie their values together."""

    def __init__(self, name: str, attributes: list[Attribute], sentence: str, caption_order: list[str],
                 qa: QuestionForms | None = None):
        self.name = name
        self.qa = qa or QuestionForms()
        self.attributes = tuple(attributes)
        self._by_name = {a.name: a for a in attributes}
        self.sentence_template = sentence
        self.caption_order = tuple(caption_order)
        for a in caption_order:
            self[a]
        self._sentence_re = self._compile_sentence()

    def __getitem__(self, name: str) -> Attribute:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"unknown attribute {name!r}; expected one of {self.names}") from None

    def __iter__(self):
        return iter(self.attributes)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    # ---- validity -------------------------------------------------------------------------
    def check(self, labels: Labels, allow_unknown: bool = False) -> None:
        """Raise SchemaError naming the attribute and value that break the schema or its rules."""
        for a in self.attributes:
            if a.name not in labels:
                raise SchemaError(f"missing attribute {a.name!r}")
            val = labels[a.name]
            if val == UNKNOWN and allow_unknown:
                continue
            a.value(val)
        for a in self.attributes:
            val = labels[a.name]
            if val == UNKNOWN:
                continue
            for other, allowed in a.value(val).only_with.items():
                ov = labels.get(other, UNKNOWN)
                if ov != UNKNOWN and ov not in allowed:
                    raise SchemaError(
                        f"{a.name}={val} cannot go with {other}={ov} (allowed: {list(allowed)})"
                    )

    def is_valid(self, labels: Labels) -> bool:
        try:
            self.check(labels)
        except SchemaError:
            return False
        return True

    def allowed(self, attr: str, given: Labels) -> list[str]:
        """Values of ``attr`` compatible with the already chosen ``given`` labels (both directions)."""
        out = []
        for v in self[attr].values:
            ok = all(given.get(o, UNKNOWN) in (UNKNOWN, *vals) for o, vals in v.only_with.items())
            for a in self.attributes:
                g = given.get(a.name, UNKNOWN)
                if a.name == attr or g == UNKNOWN:
                    continue
                rule = a.value(g).only_with.get(attr)
                if rule is not None and v.name not in rule:
                    ok = False
            if ok:
                out.append(v.name)
        return out

    def sample(self, rng: random.Random, fixed: Labels | None = None) -> dict[str, str]:
        """Draw a valid label set uniformly per attribute, in schema order, honouring the rules."""
        labels: dict[str, str] = dict(fixed or {})
        for a in self.attributes:
            if a.name not in labels:
                labels[a.name] = rng.choice(self.allowed(a.name, labels))
        self.check(labels)
        return labels

    # ---- text forms -----------------------------------------------------------------------
    def to_sentence(self, labels: Labels) -> str:
        def sub(m: re.Match) -> str:
            a = self[m.group(1)]
            return a.value(labels[a.name]).sentence

        text = re.sub(r"\[([^\]]*)\]", r"\1", self.sentence_template)
        text = re.sub(r"\{(\w+)\}", sub, text)
        return text[0].upper() + text[1:]

    def _compile_sentence(self) -> re.Pattern:
        pattern = ""
        for part in re.split(r"(\[[^\]]*\])", self.sentence_template):
            optional = part.startswith("[")
            body = part[1:-1] if optional else part
            chunk = ""
            for tok in re.split(r"(\{\w+\})", body):
                m = re.fullmatch(r"\{(\w+)\}", tok)
                if m:
                    alts = sorted((v.sentence for v in self[m.group(1)].values), key=len, reverse=True)
                    chunk += f"(?P<{m.group(1)}>" + "|".join(map(re.escape, alts)) + ")"
                else:
                    chunk += re.escape(tok)
            pattern += f"(?:{chunk})?" if optional else chunk
        return re.compile(pattern + r"\s*\.?", re.IGNORECASE)

    def from_sentence(self, sentence: str) -> dict[str, str]:
        """Parse HSD's sentence form; attributes the sentence does not mention are UNKNOWN."""
        m = self._sentence_re.fullmatch(sentence.strip())
        if not m:
            raise SchemaError(f"sentence does not follow {self.sentence_template!r}: {sentence!r}")
        out = {}
        for a in self.attributes:
            word = m.groupdict().get(a.name)
            out[a.name] = UNKNOWN
            if word:
                for v in a.values:
                    if v.sentence.lower() == word.lower():
                        out[a.name] = v.name
        return out

    def caption(self, labels: Labels, rng: random.Random | None = None) -> str:
        """Compressed caption: one phrase per attribute, comma-separated (fits CLIP's 77 tokens).

        With ``rng`` a random paraphrase of each phrase is used (training); without, the first.
        """
        parts = []
        for name in self.caption_order:
            val = labels.get(name, UNKNOWN)
            if val == UNKNOWN:
                continue
            phrases = self[name].value(val).phrases
            parts.append(rng.choice(phrases) if rng else phrases[0])
        if rng:
            rng.shuffle(parts)
        return ", ".join(parts)

    def display(self, attr: str, value: str) -> str:
        return self[attr].display_of(value)

    def render_params(self, labels: Labels) -> dict[str, object]:
        """Merge every value's ``render`` parameters: what the synthetic renderer draws."""
        params: dict[str, object] = {}
        for a in self.attributes:
            params.update(a.value(labels[a.name]).render)
        return params


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


__all__ = ["UNKNOWN", "Attribute", "Facet", "QuestionForms", "Rule", "Schema", "SchemaError", "Value", "default_schema",
           "load_schema"]

"""The schema's types: attributes, their values, question forms and planning rules, and the
:class:`Schema` that ties them together (validity of a label set, its sentence and caption forms).

Reading a schema file into these types is ``core.schema.load``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UNKNOWN = "unknown"

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
class ObjectForms:
    """The ``questions.objects`` block: how object questions ask and answer about the renderer's
    object annotations (core.synth.objects), in DriveLM's ``<c1,CAMERA,x,y>`` form."""

    questions: tuple[str, ...] = ()
    answer: str = "There is {objects}. The IDs of these objects are {ids}."
    answer_one: str = "There is {objects}. The ID of this object is {ids}."
    none: str = "There are no important objects in the current scene."
    unplaced: str = "There is {objects}."  # kinds of object without positions (the retrieval answerer)
    classes: Mapping[str, str] = field(default_factory=dict)  # renderer class -> its answer phrase
    where: tuple[str, ...] = ()  # left to right thirds of the image: "to the front left of ..."
    camera: str = "CAM_FRONT"
    frame: tuple[float, float] = (1600.0, 900.0)  # positions are written in an image of this size
    most: int = 4  # at most this many important objects (the nearest)
    min_area: float = 0.0  # visible share of the image below which an object is not important


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
    objects: ObjectForms = field(default_factory=ObjectForms)

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


__all__ = ["UNKNOWN", "Attribute", "Facet", "Labels", "QuestionForms", "Rule", "Schema", "SchemaError", "Value"]

"""The question bank: questions and answers generated from the schema and the renderer's ground truth.

Every word of a question or an answer comes from the schema's question forms (``hsd.yaml``: each
attribute's ``question``/``answer``/``yes_no``/``facets``, each value's ``answer``/``named``/``will``/
``does``, and the ``questions`` block with the planning rules); no attribute or value is spelled here.

What a question asks is an :class:`Intent`; DriveLM's groups follow from it:
- perception: an attribute's value ("What is the weather?"), a yes/no about one value ("Is the road
  surface wet?", "Is there a construction zone ahead?"), a facet ("How many roads meet at the junction?");
- planning: "What should the ego vehicle do?", answered by the first matching planning rule;
- prediction (clips): at the first frame that shows the clip's place, "Will the ego vehicle pass the
  construction zone?" for each later stage the schema's stage rules allow there, answered from the
  clip's later frames; plus one about a place the clip does not hold (answered No);
- behavior (clips): "Predict the behavior of the ego vehicle." answered by the stages the clip goes
  through at its place ("The ego vehicle approaches, enters and passes the construction zone.").

The place attribute is the one whose values carry ``named``, the stage attribute the one whose values
carry ``does``; stages with ``will`` are the events at a place, in schema order.

Objects (perception, intent kind ``objects``): DriveLM's "What are the important objects in the
current scene? ..." about a single scene whose object annotations are known (``objects.jsonl``,
``scenescope synth --objects``; core.synth.objects), answered in DriveLM's form: "There is a traffic
cone to the front left of the ego vehicle, .... The IDs of these objects are <c1,CAM_FRONT,x,y>, ...".
Every word and the position scale come from the schema's ``questions.objects`` block. These rows are
free form with tag 3 (match F1), come after a scene's other rows and draw no random numbers, so a bank
without annotations is the same as before; they exist only where annotations are given.

Forms: multiple choice (DriveLM's inline "A. ... B. ..." after the schema's ``choose`` text, the
schema's ``no_answer`` last, answered by a letter; tag 0), yes/no (tag 0) and free form (a random
paraphrase of the question and of the answer; tag 2, language metrics).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.schema import UNKNOWN, Attribute, Schema, default_schema
from core.vqa.drivelm import TAG_ACCURACY, TAG_LANGUAGE, TAG_MATCH, option_letter, qa_id
from core.vqa.question_objects import important_objects, listed, object_point, object_tag, objects_answer

QA_FILE = "qa.jsonl"
CLIP_FRAME = "clip"  # the `frame` of a question about a whole clip
CLIP_KIND = "clip"  # the `kind` of a row about a clip (prediction, behavior); scenes' rows say "scene"
KINDS = ("attribute", "yes_no", "facet", "planning", "prediction", "behavior", "objects")
GROUP_OF = {"attribute": "perception", "yes_no": "perception", "facet": "perception", "planning": "planning",
            "prediction": "prediction", "behavior": "behavior", "objects": "perception"}


@dataclass(frozen=True)
class Intent:
    """What a question asks. ``attribute``/``value``: the attribute (and, for yes/no, the value asked
    about; for prediction, the place); ``facet``: the facet's index; ``stage``: prediction's stage."""

    kind: str
    attribute: str | None = None
    value: str | None = None
    facet: int | None = None
    stage: str | None = None

    @property
    def group(self) -> str:
        return GROUP_OF[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# ---- roles -----------------------------------------------------------------------------------
def place_attribute(schema: Schema) -> Attribute | None:
    """The attribute whose values name a place (``named``), or None."""
    return next((a for a in schema if any(v.named for v in a.values)), None)


def stage_attribute(schema: Schema) -> Attribute | None:
    """The attribute whose values say what the ego vehicle does (``does``), or None."""
    return next((a for a in schema if any(v.does for v in a.values)), None)


def event_stages(schema: Schema, place: str | None = None) -> list[str]:
    """Stage values that are events at a place (they carry ``will``), in schema order; with ``place``,
    only those the schema's stage rules allow there."""
    stage = stage_attribute(schema)
    if stage is None:
        return []
    names = [v.name for v in stage.values if v.will]
    if place is not None:
        allowed = set(schema.allowed(stage.name, {place_attribute(schema).name: place}))  # type: ignore[union-attr]
        names = [n for n in names if n in allowed]
    return names


def clip_questions_possible(schema: Schema) -> bool:
    return bool(place_attribute(schema) and stage_attribute(schema) and schema.qa.prediction_questions
                and schema.qa.behavior_questions and schema.qa.behavior_answers)


# ---- texts -----------------------------------------------------------------------------------
def fill(template: str, text: str) -> str:
    """``template`` with ``{}`` replaced by ``text``; the text's first letter is lowered unless the
    placeholder opens the sentence (so "The ego vehicle should {}" reads well with an action)."""
    if not template.startswith("{}") and text[:1].isupper() and not text[1:2].isupper():
        text = text[:1].lower() + text[1:]
    return template.replace("{}", text)


def behavior_verbs(schema: Schema, stages: Sequence[str]) -> str:
    """The stages' ``does`` joined as English lists them: "approaches, enters and passes"."""
    stage = stage_attribute(schema)
    verbs = [stage.value(s).does or stage.value(s).answer for s in stages]  # type: ignore[union-attr]
    return verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " and " + verbs[-1]


def behavior_text(schema: Schema, place: str, stages: Sequence[str], template: int = 0) -> str:
    named = place_attribute(schema).value(place).named or place_attribute(schema).value(place).answer  # type: ignore[union-attr]
    t = schema.qa.behavior_answers[template]
    return t.replace("{does}", behavior_verbs(schema, stages)).replace("{place}", named)


def questions_of(schema: Schema, intent: Intent, *, all_phrases: bool = False) -> list[str]:
    """The question's paraphrases, the canonical one first. ``all_phrases`` adds forms built from
    every prompt phrase of the value asked about (used to recognise free questions)."""
    if intent.kind == "attribute":
        return list(schema[intent.attribute].questions)  # type: ignore[index]
    if intent.kind == "yes_no":
        a = schema[intent.attribute]  # type: ignore[index]
        v = a.value(intent.value)  # type: ignore[arg-type]
        words = [v.answer, *(v.phrases if all_phrases else ())]
        return list(dict.fromkeys(fill(a.yes_no, w) for w in words)) if a.yes_no else []
    if intent.kind == "facet":
        return list(schema[intent.attribute].facets[intent.facet].questions)  # type: ignore[index]
    if intent.kind == "planning":
        return list(schema.qa.planning_questions)
    if intent.kind == "behavior":
        return list(schema.qa.behavior_questions)
    if intent.kind == "objects":
        return list(schema.qa.objects.questions)
    place = place_attribute(schema).value(intent.value)  # type: ignore[union-attr,arg-type]
    will = stage_attribute(schema).value(intent.stage).will  # type: ignore[union-attr,arg-type]
    names = [place.named or place.answer, *(place.phrases if all_phrases else ())]
    return list(dict.fromkeys(t.replace("{will}", will or "").replace("{place}", n)
                              for t in schema.qa.prediction_questions for n in names))


def intents(schema: Schema) -> list[Intent]:
    """Every question the schema can ask (the answerers match free questions against these)."""
    out: list[Intent] = []
    for a in schema:
        out.append(Intent("attribute", a.name))
        if a.yes_no:
            out += [Intent("yes_no", a.name, v.name) for v in a.values if v.yes_no]
        out += [Intent("facet", a.name, facet=i) for i in range(len(a.facets))]
    if schema.qa.planning_questions and schema.qa.rules:
        out.append(Intent("planning"))
    if clip_questions_possible(schema):
        place = place_attribute(schema)
        for v in place.values:  # type: ignore[union-attr]
            out += [Intent("prediction", place.name, v.name, stage=s) for s in event_stages(schema, v.name)]  # type: ignore[union-attr]
        out.append(Intent("behavior"))
    if schema.qa.objects.questions and schema.qa.objects.classes:
        out.append(Intent("objects"))
    return out


def choices(schema: Schema, intent: Intent) -> list[tuple[str, str]]:
    """Multiple-choice options of an intent as (key, text), without the no-answer option. Keys are
    value names (attribute), answers (facet) or actions (planning)."""
    if intent.kind == "attribute":
        return [(v.name, v.display) for v in schema[intent.attribute].values]  # type: ignore[index]
    if intent.kind == "facet":
        answers = schema[intent.attribute].facets[intent.facet].answers.values()  # type: ignore[index]
        return [(x, x) for x in dict.fromkeys(answers)]
    if intent.kind == "planning":
        return [(x, x) for x in schema.qa.actions]
    raise ValueError(f"no fixed options for a {intent.kind} question")


def inline_choices(schema: Schema, stem: str, options: Sequence[str]) -> str:
    """DriveLM's multiple-choice question: the stem, the lead-in, then "A. text. B. text. ..."."""
    listed = " ".join(f"{option_letter(i)}. {o.rstrip('.')}." for i, o in enumerate(options))
    return f"{stem} {schema.qa.choose} {listed}"


def free_answer(schema: Schema, intent: Intent, key: str, template: int = 0) -> str:
    """The free-form answer saying ``key`` (a value name, facet answer, action, yes or no)."""
    if intent.kind == "attribute":
        a = schema[intent.attribute]  # type: ignore[index]
        return fill(a.answers[template % len(a.answers)], a.value(key).answer)
    if intent.kind == "planning":
        answers = schema.qa.planning_answers
        return fill(answers[template % len(answers)], key)
    return key  # yes/no words, facet answers and behavior texts are answers as they stand


# ---- ground truth ----------------------------------------------------------------------------
def truth(schema: Schema, intent: Intent, labels: Mapping[str, str]) -> str | None:
    """The answer key a frame's labels give a perception or planning intent; None when it does not
    apply (an unknown label, a facet the value has no answer for, no matching rule)."""
    if intent.kind in ("attribute", "yes_no", "facet") and labels.get(intent.attribute, UNKNOWN) == UNKNOWN:  # type: ignore[arg-type]
        return None
    if intent.kind == "attribute":
        return labels[intent.attribute]  # type: ignore[index]
    if intent.kind == "yes_no":
        return schema.qa.yes if labels[intent.attribute] == intent.value else schema.qa.no  # type: ignore[index]
    if intent.kind == "facet":
        return schema[intent.attribute].facets[intent.facet].answers.get(labels[intent.attribute])  # type: ignore[index]
    if intent.kind == "planning":
        needed = {a for r in schema.qa.rules for a in r.when}
        return None if any(labels.get(a, UNKNOWN) == UNKNOWN for a in needed) else schema.qa.action(labels)
    if intent.kind == "objects":
        raise ValueError("object questions are answered from a frame's object annotations (objects_answer)")
    raise ValueError(f"{intent.kind} questions are about clips")


def clip_place(schema: Schema, frames: Sequence[Mapping[str, str]]) -> tuple[str, list[int]] | None:
    """A clip's place and the frames that show it (their stage is an event), or None if none does."""
    place, stage = place_attribute(schema), stage_attribute(schema)
    events = set(event_stages(schema))
    known = set(place.value_names)  # type: ignore[union-attr]
    # Voted frames may leave the place unknown (an abstention): they show no place.
    shown = [i for i, f in enumerate(frames)
             if f.get(stage.name) in events and f.get(place.name) in known]  # type: ignore[union-attr]
    if not shown:
        return None
    counts = Counter(frames[i][place.name] for i in shown)  # type: ignore[union-attr]
    best = max(counts, key=lambda v: (counts[v], -place.value_names.index(v)))  # type: ignore[union-attr]
    return best, [i for i in shown if frames[i][place.name] == best]  # type: ignore[union-attr]


def clip_behavior(schema: Schema, frames: Sequence[Mapping[str, str]]) -> tuple[str, list[str]]:
    """(place, stages in schema order) the clip goes through; a clip that shows no place is its first
    frame's place and stage (just driving)."""
    place, stage = place_attribute(schema), stage_attribute(schema)
    found = clip_place(schema, frames)
    if found is None:
        return frames[0][place.name], [frames[0][stage.name]]  # type: ignore[union-attr]
    value, rows = found
    seen = {frames[i][stage.name] for i in rows}  # type: ignore[union-attr]
    return value, [s for s in stage.value_names if s in seen]  # type: ignore[union-attr]


def will_happen(schema: Schema, frames: Sequence[Mapping[str, str]], key: int, place: str, stage: str) -> bool:
    """Whether a frame after ``key`` shows ``place`` at ``stage`` (the clip's ground truth)."""
    pa, sa = place_attribute(schema), stage_attribute(schema)
    return any(f[pa.name] == place and f[sa.name] == stage for f in frames[key + 1:])  # type: ignore[union-attr]


# ---- the bank --------------------------------------------------------------------------------
def _row(scene: str, frame: str, kind: str, intent: Intent, qtype: str, question: str, answer: str,
         options: list[str] | None = None) -> dict[str, Any]:
    return {"scene": scene, "frame": frame, "kind": kind, "group": intent.group, "type": qtype,
            "question": question, "options": options, "answer": answer,
            "tag": [TAG_ACCURACY] if qtype in ("multiple_choice", "yes_no") else [TAG_LANGUAGE],
            "intent": intent.to_dict()}


def _mc_and_free(schema: Schema, scene: str, frame: str, kind: str, intent: Intent, key: str,
                 rng: random.Random, opts: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The multiple-choice and free-form forms of one intent whose answer is ``key``."""
    opts = opts if opts is not None else choices(schema, intent)
    texts = [t for _, t in opts] + [schema.qa.no_answer]
    letter = option_letter([k for k, _ in opts].index(key))
    paraphrases = questions_of(schema, intent)
    n_answers = {"attribute": len(schema[intent.attribute].answers) if intent.attribute else 1,
                 "planning": len(schema.qa.planning_answers)}.get(intent.kind, 1)
    free = free_answer(schema, intent, key, rng.randrange(n_answers))
    return [_row(scene, frame, kind, intent, "multiple_choice",
                 inline_choices(schema, rng.choice(paraphrases), texts), letter, texts),
            _row(scene, frame, kind, intent, "free_form", rng.choice(paraphrases), free)]


def scene_questions(schema: Schema, labels: Mapping[str, str], rng: random.Random, scene: str = "",
                    frame: str = "0", kind: str = "scene",
                    objects: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Perception and planning questions about one frame with these labels (rows without ids);
    with ``objects`` (the frame's ``{size, objects}`` annotations) also the important-objects question,
    last and drawing no random numbers."""
    rows: list[dict[str, Any]] = []
    for a in schema:
        value = labels.get(a.name, UNKNOWN)
        if value == UNKNOWN:
            continue
        rows += _mc_and_free(schema, scene, frame, kind, Intent("attribute", a.name), value, rng)
        askable = [v.name for v in a.values if v.yes_no] if a.yes_no else []
        if value in askable:
            rows.append(_row(scene, frame, kind, Intent("yes_no", a.name, value), "yes_no",
                             rng.choice(questions_of(schema, Intent("yes_no", a.name, value))), schema.qa.yes))
        others = [v for v in askable if v != value]
        if others:
            other = Intent("yes_no", a.name, rng.choice(others))
            rows.append(_row(scene, frame, kind, other, "yes_no", rng.choice(questions_of(schema, other)),
                             schema.qa.no))
        for i, f in enumerate(a.facets):
            if value in f.answers:
                rows += _mc_and_free(schema, scene, frame, kind, Intent("facet", a.name, facet=i),
                                     f.answers[value], rng)
    plan = Intent("planning")
    if plan in intents(schema):
        action = truth(schema, plan, labels)
        if action is not None:
            rows += _mc_and_free(schema, scene, frame, kind, plan, action, rng)
    asks = schema.qa.objects.questions
    if objects is not None and Intent("objects") in intents(schema):
        row = _row(scene, frame, kind, Intent("objects"), "free_form", asks[len(rows) % len(asks)],
                   objects_answer(schema, objects["objects"], objects["size"]))
        rows.append({**row, "tag": [TAG_MATCH]})
    return rows


def clip_questions(schema: Schema, frames: Sequence[Mapping[str, str]], rng: random.Random, scene: str = "",
                   n_distractors: int = 3) -> list[dict[str, Any]]:
    """Prediction and behavior questions about a clip whose frames (in time order) have these labels."""
    if not clip_questions_possible(schema) or not frames:
        return []
    rows: list[dict[str, Any]] = []
    place_attr = place_attribute(schema)
    found = clip_place(schema, frames)
    if found is not None:
        place, shown = found
        key = shown[0]
        now = frames[key][stage_attribute(schema).name]  # type: ignore[union-attr]
        later = [s for s in event_stages(schema, place) if event_stages(schema).index(s) > event_stages(schema).index(now)]
        asks = [Intent("prediction", place_attr.name, place, stage=s) for s in later]  # type: ignore[union-attr]
        others = [v.name for v in place_attr.values if v.name != place and event_stages(schema, v.name)]  # type: ignore[union-attr]
        if others:
            other = rng.choice(others)
            asks.append(Intent("prediction", place_attr.name, other, stage=rng.choice(event_stages(schema, other))))  # type: ignore[union-attr]
        for it in asks:
            yes = will_happen(schema, frames, key, it.value, it.stage)  # type: ignore[arg-type]
            rows.append(_row(scene, str(key), CLIP_KIND, it, "yes_no", rng.choice(questions_of(schema, it)),
                             schema.qa.yes if yes else schema.qa.no))
    place, stages = clip_behavior(schema, frames)
    behave = Intent("behavior")
    text = behavior_text(schema, place, stages)
    pool = [behavior_text(schema, v.name, event_stages(schema, v.name)) for v in place_attr.values  # type: ignore[union-attr]
            if v.name != place and event_stages(schema, v.name)]
    opts = [text, *rng.sample(pool, min(n_distractors, len(pool)))]
    rng.shuffle(opts)
    rows += _mc_and_free(schema, scene, CLIP_FRAME, CLIP_KIND, behave, text, rng, [(o, o) for o in opts])
    rows[-1]["answer"] = behavior_text(schema, place, stages, rng.randrange(len(schema.qa.behavior_answers)))
    return rows


def question_bank(manifest: Iterable[Mapping[str, Any]], schema: Schema | None = None, seed: int = 0,
                  objects: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The question bank of a dataset's manifest rows: single-frame clips get perception and planning
    questions, clips of several frames prediction and behavior questions. Rows carry DriveLM's QA
    columns (``core.vqa.drivelm.QA_COLUMNS``) plus ``kind`` (scene or clip), ``split`` and ``intent``
    (what the question asks: the ground truth's key, not for answerers). ``objects``: annotations by
    frame path (core.synth.objects.read_objects); a single scene found there also gets the
    important-objects question."""
    schema = schema or default_schema()
    rng = random.Random(seed)
    by_clip: dict[str, list[Mapping[str, Any]]] = {}
    for r in manifest:
        by_clip.setdefault(str(r["clip_id"]), []).append(r)
    out: list[dict[str, Any]] = []
    for clip in sorted(by_clip):
        frames = sorted(by_clip[clip], key=lambda r: int(r.get("frame_index") or 0))
        labels = [{a: str(f.get(a, UNKNOWN)) for a in schema.names} for f in frames]
        if len(frames) == 1:
            rows = scene_questions(schema, labels[0], rng, clip, str(int(frames[0].get("frame_index") or 0)),
                                   objects=(objects or {}).get(str(frames[0].get("path"))))
        else:
            rows = clip_questions(schema, labels, rng, clip)
        for i, row in enumerate(rows):
            out.append({"id": qa_id(clip, row["frame"], i), **row, "scene": clip, "index": i,
                        "split": str(frames[0].get("split", ""))})
    return out


def write_question_bank(root: str | Path, schema: Schema | None = None, seed: int = 0) -> Path:
    """Write ``qa.jsonl`` beside a dataset's manifest (atomically) from its labels (and its object
    annotations, ``objects.jsonl``, when present); returns its path."""
    from core.data import read_manifest
    from core.synth.objects import read_objects

    root = Path(root)
    schema = schema or default_schema()
    ds = read_manifest(root, schema)
    rows = question_bank(ds.frames.to_dict("records"), schema, seed, read_objects(root))
    path = root / QA_FILE
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


__all__ = [
    "CLIP_FRAME", "KINDS", "QA_FILE", "Intent", "behavior_text", "choices", "clip_behavior", "clip_place",
    "clip_questions", "event_stages", "fill", "free_answer", "important_objects", "inline_choices", "intents",
    "listed", "object_point", "object_tag", "objects_answer", "place_attribute", "question_bank", "questions_of", "scene_questions", "stage_attribute", "truth", "will_happen",
    "write_question_bank",
]

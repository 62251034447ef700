"""Ask: a question about a scene (an indexed frame, an uploaded image or clip) answered by the
retrieval answerer (the k-NN vote, ``core.vqa.answer``) or the bundled small VLM (``core.vqa.vlm``).

The scene is analysed once (``app.handlers.scene``: votes, display frames, the familiarity banner),
then every question reuses its votes. What comes back for drawing (:class:`AskResult`): the answer
with its confidence, the neighbours that support or contradict it, the question's kept-token
heatmap (the Tokens page's ``core.tokens`` selection), and for a clip the answer frame by frame as
time spans; a "when ...?" question about a clip is answered by the time window where it holds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from app import words
from app.handlers.tokens import token_heatmap
from core.model_names import ASSETS
from core.predict import Neighbor, Vote
from core.schema import UNKNOWN, Schema
from core.vqa.answer import DEFAULT_THRESHOLD, Answer, QuestionError, answer, check_question, match_question
from core.vqa.drivelm import option_letter, split_options
from core.vqa.questions import (
    Intent,
    choices,
    clip_place,
    event_stages,
    intents,
    place_attribute,
    questions_of,
    stage_attribute,
)

if TYPE_CHECKING:
    from app.handlers.scene import SceneAnalysis
    from core.types import IndexStore, SceneModel

BUNDLED_VLM = ASSETS / "scenescope-vqa-tiny"  # shipped by `scenescope train-vqa --out assets/...`
ANSWERER_LABELS = {"retrieval": "Retrieval (k-NN vote)", "vlm": "Small VLM (scenescope-vqa-tiny)"}
DEFAULT_KEEP = 0.25  # LaVida Drive's default share of patch tokens kept
WHEN = "when"  # a question opening with this word about a clip asks for a time window
MAX_CARDS = 5  # evidence cards per role


# ---- what can be asked -----------------------------------------------------------------------
def vlm_status(folder: str | Path = BUNDLED_VLM) -> tuple[bool, str]:
    """(installed, a line for people) of the bundled VLM folder."""
    folder = Path(folder)
    if (folder / "vlm_config.json").is_file() and (folder / "vlm.safetensors").is_file():
        return True, f"{folder.name} is installed"
    return False, (f"The small VLM ({folder.name}) is not installed: train it with `scenescope train-vqa "
                   f"--out {folder}` (or install a release that ships it); the retrieval answerer works without it.")


@functools.lru_cache(maxsize=2)
def _load_vlm(folder: str, stamp: float) -> Any:
    from core.vqa.vlm_folder import load_vlm

    return load_vlm(folder)


def open_vlm(folder: str | Path = BUNDLED_VLM) -> Any:
    """The VLM of ``folder``, loaded once per process (reloaded when its weights change)."""
    ok, why = vlm_status(folder)
    if not ok:
        raise FileNotFoundError(why)
    folder = Path(folder)
    return _load_vlm(str(folder.resolve()), (folder / "vlm.safetensors").stat().st_mtime)


def when_question(schema: Schema, place: str, stage: str) -> str | None:
    """"When does the ego vehicle enter the construction zone?": the schema's prediction question
    with its opening word ("Will") turned into "When does" (None when the schema has none)."""
    templates = schema.qa.prediction_questions
    if not templates or " " not in templates[0]:
        return None
    body = templates[0].split(" ", 1)[1]
    will = stage_attribute(schema).value(stage).will  # type: ignore[union-attr]
    pv = place_attribute(schema).value(place)  # type: ignore[union-attr]
    return "When does " + body.replace("{will}", will or "").replace("{place}", pv.named or pv.answer)


def suggested_questions(schema: Schema, votes: list[Vote] | None = None, clip: bool = False) -> list[str]:
    """A short list of questions one click away: each attribute's, the planning question, and for
    a clip the behavior question and when the drive reaches the place its votes show."""
    out = [questions_of(schema, it)[0] for it in intents(schema) if it.kind in ("attribute", "planning")]
    if clip and votes:
        out += [questions_of(schema, it)[0] for it in intents(schema) if it.kind == "behavior"]
        roles = [a.name for a in (place_attribute(schema), stage_attribute(schema)) if a]
        decided = [v.labels() for v in votes if all(v.labels().get(a, UNKNOWN) != UNKNOWN for a in roles)]
        found = clip_place(schema, decided) if len(roles) == 2 and decided else None
        if found:  # the place the votes show, at the stage most of its frames show
            place, shown = found[0], [decided[i][roles[1]] for i in found[1]]
            stage = max(dict.fromkeys(shown), key=shown.count)
        else:
            place = next((v.name for v in place_attribute(schema).values if event_stages(schema, v.name)), None)  # type: ignore[union-attr]
            stage = event_stages(schema, place)[0] if place else None
        q = when_question(schema, place, stage) if place and stage else None
        out += [q] if q else []
    return [q for q in out if q]


def choice_sets(schema: Schema) -> dict[str, list[str]]:
    """Multiple-choice sets (question -> options, the no-answer option last), as HSD's sets."""
    out: dict[str, list[str]] = {}
    for it in intents(schema):
        if it.kind in ("attribute", "facet", "planning"):
            out[questions_of(schema, it)[0]] = [text for _, text in choices(schema, it)] + [schema.qa.no_answer]
    return out


# ---- results ---------------------------------------------------------------------------------
@dataclass
class EvidenceCard:
    """A neighbour behind the answer: ``role`` supports | contradicts | split (no definite answer)."""

    role: str
    id: int
    similarity: float
    path: str | None
    labels: dict[str, str]
    attributes: list[str]  # the attributes the question is about (what the card should show)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "id": self.id, "similarity": self.similarity, "path": self.path,
                "labels": dict(self.labels)}


@dataclass
class AnswerSpan:
    """A stretch of a clip over which the per-frame answer stays the same."""

    text: str
    start_s: float
    end_s: float
    confidence: float
    definite: bool

    @property
    def label(self) -> str:
        return words.span(self.start_s, self.end_s)


@dataclass
class AskResult:
    question: str
    answerer: str
    answer: Answer
    options: list[str] | None = None
    evidence: list[EvidenceCard] = field(default_factory=list)
    timeline: list[AnswerSpan] = field(default_factory=list)
    window: list[tuple[float, float]] = field(default_factory=list)  # where a yes/no or when-question holds
    focus: int = 0  # the frame the heatmap and the VLM look at
    heatmap: Image.Image | None = None
    kept: tuple[int, int] | None = None  # (kept, total) patch tokens
    banner: str | None = None  # the familiarity warning
    second_opinion: Answer | None = None  # the retrieval answer beside the VLM's

    @property
    def letter(self) -> str | None:
        return None if self.answer.choice is None else option_letter(self.answer.choice)

    def to_dict(self) -> dict[str, Any]:
        out = self.answer.to_dict()
        out.pop("evidence")
        return {**out, "question": self.question, "answerer": self.answerer, "options": self.options,
                "evidence": [c.to_dict() for c in self.evidence],
                "timeline": [{"answer": s.text, "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                              "confidence": s.confidence, "definite": s.definite} for s in self.timeline],
                "window": [[round(a, 3), round(b, 3)] for a, b in self.window],
                "kept_tokens": self.kept[0] if self.kept else None, "total_tokens": self.kept[1] if self.kept else None,
                "familiarity": self.banner,
                "second_opinion": None if self.second_opinion is None else self.second_opinion.to_dict()}


# ---- answering -------------------------------------------------------------------------------
def _stem(schema: Schema, q: str, options: list[str] | None) -> tuple[str, list[str] | None]:
    if options is None:
        stem, inline = split_options(q)
        q, options = (stem, inline) if inline else (q, None)
    lead = schema.qa.choose.strip()
    return (q[: -len(lead)].strip() if lead and q.endswith(lead) else q), options


def _relevant(schema: Schema, intent: Intent | None) -> list[str]:
    """The attributes an intent's answer rests on."""
    if intent is None:
        return []
    if intent.kind in ("attribute", "yes_no", "facet"):
        return [intent.attribute]  # type: ignore[list-item]
    if intent.kind == "planning":
        return list(dict.fromkeys(a for r in schema.qa.rules for a in r.when))
    return [a.name for a in (place_attribute(schema), stage_attribute(schema)) if a]


def _cards(schema: Schema, ans: Answer, votes: list[Vote]) -> list[EvidenceCard]:
    """The answer's voters (supports) and the other neighbours with a known label on what the
    question is about (contradicts); for no definite answer, all of them (split)."""
    rel = _relevant(schema, ans.intent)
    pool: dict[int, Neighbor] = {}
    for v in votes:
        for n in [*v.neighbors, *(m for a in rel for m in v.attributes[a].pool(v))]:
            pool.setdefault(n.id, n)
    known = sorted((n for n in pool.values() if any(n.labels.get(a, UNKNOWN) != UNKNOWN for a in rel)),
                   key=lambda n: -n.similarity)
    if not ans.definite:
        return [EvidenceCard("split", n.id, n.similarity, n.path, dict(n.labels), rel) for n in known[:MAX_CARDS]]
    ids = {n.id for n in ans.evidence}
    support = sorted(ans.evidence, key=lambda n: -n.similarity)[:MAX_CARDS]
    against = [n for n in known if n.id not in ids][:MAX_CARDS]
    return ([EvidenceCard("supports", n.id, n.similarity, n.path, dict(n.labels), rel) for n in support]
            + [EvidenceCard("contradicts", n.id, n.similarity, n.path, dict(n.labels), rel) for n in against])


def _frame_answer(schema: Schema, q: str, intent: Intent, vote: Vote, options: list[str] | None,
                  threshold: float) -> Answer:
    """One frame's answer; a prediction question asks, per frame, whether the vote sees the asked
    place at the asked stage now (so its Yes frames are the time window)."""
    if intent.kind != "prediction":
        return answer(q, vote, options=options, schema=schema, threshold=threshold)
    pa, sa = place_attribute(schema).name, stage_attribute(schema).name  # type: ignore[union-attr]
    ap, ast = vote.attributes[pa], vote.attributes[sa]
    if ap.abstained or ast.abstained:
        return Answer(schema.qa.no_answer, 0.0, [], reason="the vote abstained", intent=intent, definite=False)
    hit = ap.value == intent.value and ast.value == intent.stage
    conf = min(ap.share, ast.share) if hit else 1.0 - min(ap.scores.get(intent.value, 0.0),  # type: ignore[arg-type]
                                                          ast.scores.get(intent.stage, 0.0))  # type: ignore[arg-type]
    voters = [n for n in {m.id: m for m in [*ap.voters, *ast.voters]}.values()]
    if conf < threshold:
        return Answer(schema.qa.no_answer, conf, voters, reason=f"confidence {conf:.2f} is below {threshold:.2f}",
                      intent=intent, definite=False)
    return Answer(schema.qa.yes if hit else schema.qa.no, conf, voters if hit else [], intent=intent)


def _spans(answers: list[Answer], times: np.ndarray, duration: float) -> list[AnswerSpan]:
    out: list[AnswerSpan] = []
    for i, a in enumerate(answers):
        start = float(times[i])
        end = float(times[i + 1]) if i + 1 < len(times) else max(duration, start)
        if out and out[-1].text == a.text:
            last = out[-1]
            n = (last.end_s - last.start_s) or 1.0
            w = end - start
            last.confidence = (last.confidence * n + a.confidence * w) / max(n + w, 1e-9)
            last.end_s = end
        else:
            out.append(AnswerSpan(a.text, start, end, float(a.confidence), a.definite))
    return out


def _when_answer(schema: Schema, intent: Intent, matched: str, per: list[Answer], spans: list[AnswerSpan]) -> Answer:
    """A when-question: the stretches where the per-frame answer is Yes."""
    window = [s for s in spans if s.text == schema.qa.yes]
    if not window:
        return Answer(schema.qa.no_answer, 0.0, [], reason="no frame of the clip is voted to show that",
                      intent=intent, matched=matched, definite=False)
    yes = [a for a in per if a.text == schema.qa.yes]
    evidence = list({n.id: n for a in yes for n in a.evidence}.values())
    conf = float(np.mean([a.confidence for a in yes]))
    return Answer(", ".join(s.label for s in window), conf, evidence, intent=intent, matched=matched)


def question_heatmap(model: SceneModel, frame: np.ndarray | Image.Image, question: str,
                     keep_ratio: float = DEFAULT_KEEP, rule: str = "max", method: str = "raw",
                     ) -> tuple[Image.Image, tuple[int, int]]:
    """The question's kept-token heatmap over ``frame`` (the VLM's selection rule: a patch scores
    its best cosine over the question's word tokens) and (kept, total) tokens."""
    from core.tokens import select_images

    image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    sel = select_images(model, [image], query=question, keep_ratio=float(keep_ratio), rule=rule, method=method)[0]
    return token_heatmap(image, sel, question), (sel.k, int(sel.scores.size))


def _vlm_answers(vlm: Any, q: str, frames: list[np.ndarray], options: list[str] | None, keep: float,
                 threshold: float, schema: Schema, focus: int, clip: bool) -> tuple[Answer, list[Answer]]:
    from core.vqa.vlm_answerer import VLMAnswerer

    ans = VLMAnswerer(vlm, threshold=threshold, keep_ratio=keep, schema=schema)
    # One frame decoded at a time: a clip's frames are held encoded (handlers.EncodedFrames).
    per = [ans.answer_image(q, Image.fromarray(f), options) for f in frames] if clip else []
    return (per[focus] if per else ans.answer_image(q, Image.fromarray(frames[focus]), options)), per


def question_problem(question: str, schema: Schema) -> str | None:
    """Why a question cannot be asked (empty, too long, outside the schema), before any scene work."""
    try:
        q = check_question(question)
    except QuestionError as e:
        return f"Cannot ask that: {e}."
    stem, _ = _stem(schema, q, None)
    intent, _, why = match_question(stem, schema)
    return None if intent is not None else f"Cannot answer “{stem}”: {why}."


def ask(analysis: SceneAnalysis, question: str, model: SceneModel, store: IndexStore, *,
        options: list[str] | None = None, answerer: str = "retrieval", keep_ratio: float = DEFAULT_KEEP,
        threshold: float = DEFAULT_THRESHOLD, vlm_folder: str | Path = BUNDLED_VLM, heatmap: bool = True,
        ) -> tuple[AskResult | None, str | None]:
    """Answer ``question`` about an analysed scene: ``(result, None)`` or ``(None, one-line error)``."""
    schema = store.schema
    try:
        q = check_question(question)
    except QuestionError as e:
        return None, f"Cannot ask that: {e}."
    opts = [o.strip() for o in options if o and o.strip()] if options is not None else None
    if opts is not None and len(opts) < 2:
        return None, f"A multiple-choice question needs at least 2 options; got {len(opts)}."
    if answerer not in ANSWERER_LABELS:
        return None, f"Unknown answerer {answerer!r}; choose one of {', '.join(ANSWERER_LABELS)}."
    stem, opts = _stem(schema, q, opts)
    intent, matched, why = match_question(stem, schema)
    if intent is None:
        return None, f"Cannot answer “{stem}”: {why}."
    clip = analysis.kind == "clip"
    when = stem.split(" ", 1)[0].lower() == WHEN
    if when and not clip:
        return None, f"“{stem}” asks for a time: upload a clip to ask when something happens."
    if when and intent.kind not in ("prediction", "yes_no"):
        return None, f"“{stem}”: only when the ego vehicle reaches a place or stage can be timed."
    votes = analysis.votes
    focus = len(votes) // 2 if clip else 0  # the VLM's frame of a clip (core.vqa.vlm_answerer.VLMAnswerer.frame)
    over_time = clip and intent.kind != "behavior"  # behavior is the whole clip's, not a frame's
    per = [_frame_answer(schema, stem, intent, v, opts, threshold) for v in votes] if over_time else []
    retrieval = answer(stem, votes, options=opts, schema=schema, threshold=threshold)
    main, second = retrieval, None
    if answerer == "vlm" and not when:  # a time window comes from the frames' votes for both answerers
        try:
            vlm = open_vlm(vlm_folder)
        except (FileNotFoundError, ValueError) as e:
            return None, str(e)
        main, vper = _vlm_answers(vlm, stem, analysis.frames, opts, keep_ratio, threshold, schema, focus, clip)
        main.intent, main.matched, second = intent, matched, retrieval
        per = vper or per
    spans = _spans(per, analysis.times, analysis.duration) if clip else []
    window = [(s.start_s, s.end_s) for s in spans if s.text == schema.qa.yes]
    if when:
        main = _when_answer(schema, intent, matched, per, spans)
        focus = next((i for i, a in enumerate(per) if a.text == schema.qa.yes), focus)
    result = AskResult(q, answerer, main, opts, _cards(schema, second or main, votes), spans, window, focus,
                       banner=analysis.familiarity_banner(), second_opinion=second)
    if heatmap:
        tower = vlm.vision if answerer == "vlm" else model
        rule = vlm.cfg.rule if answerer == "vlm" else "max"
        result.heatmap, result.kept = question_heatmap(tower, analysis.frames[focus], stem, keep_ratio, rule)
    return result, None


__all__ = [
    "ANSWERER_LABELS", "BUNDLED_VLM", "DEFAULT_KEEP", "AnswerSpan", "AskResult", "EvidenceCard", "ask",
    "choice_sets", "open_vlm", "question_heatmap", "question_problem", "suggested_questions", "vlm_status", "when_question",
]

"""Answerers: one interface, ``answer(question, ...) -> Answer`` (text, confidence, evidence, choice).

The retrieval-grounded answerer maps a question to what the schema can ask (an :class:`Intent` of
``core.vqa.questions``) and answers from the k-NN vote (``core.predict.vote_batch`` through
``core.pipeline``): the confidence is the vote share of what it says, the evidence the voters.

Mapping questions (and options) to the schema uses TF-IDF token overlap (scikit-learn) with the
schema's own question paraphrases, answer words, display names and prompt phrases, not the model's
text tower: CLIP-style text towers are trained on captions, not questions ("Is the road surface
wet?" and "Is the road surface dry?" embed almost alike), the bundled model's is small, and the
mapping would change with the model; token overlap is deterministic, the same for every registry
model, and its reason can be shown (the matched question).

The answerer never makes up a confident answer: it says the schema's ``no_answer`` ("No definite
answer") with the reason when the vote abstained (a split vote, or "unlike this index"), when the
confidence is below the threshold, when the question does not apply to what the vote saw, or when the
schema does not cover the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from core.predict import AttributeVote, Neighbor, Vote
from core.schema import UNKNOWN, Schema, default_schema
from core.vqa.drivelm import option_letter, split_options
from core.vqa.questions import (
    Intent,
    behavior_text,
    clip_behavior,
    clip_place,
    event_stages,
    free_answer,
    intents,
    place_attribute,
    questions_of,
    stage_attribute,
)

if TYPE_CHECKING:
    from pathlib import Path

    from core.types import IndexStore, SceneModel

MAX_QUESTION_CHARS = 512
DEFAULT_THRESHOLD = 0.5  # a strict majority of the voters behind the answer
MIN_SIMILARITY = 0.25  # TF-IDF cosine below which a question matches nothing the schema asks
ANSWERERS = ("retrieval",)
_TOKEN = r"(?u)\b\w[\w+-]*"


class QuestionError(ValueError):
    """A question that cannot be asked: empty or too long."""


@dataclass
class Answer:
    """``text``: the answer (the chosen option's text for multiple choice); ``choice``: the chosen
    option's 0-based index; ``reason``: why there is no definite answer; ``evidence``: the voters."""

    text: str
    confidence: float
    evidence: list[Neighbor] = field(default_factory=list)
    choice: int | None = None
    reason: str | None = None
    intent: Intent | None = None
    matched: str | None = None  # the schema question the question was read as
    definite: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text, "confidence": self.confidence, "definite": self.definite,
            "choice": self.choice, "letter": None if self.choice is None else option_letter(self.choice),
            "reason": self.reason, "matched": self.matched,
            "intent": None if self.intent is None else self.intent.to_dict(),
            "evidence": [n.to_dict() for n in self.evidence],
        }


def check_question(question: str) -> str:
    """The question stripped; QuestionError when it is empty or over MAX_QUESTION_CHARS characters."""
    q = (question or "").strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question has {len(q)} characters; at most {MAX_QUESTION_CHARS} are allowed")
    return q


# ---- matching text to the schema -------------------------------------------------------------
def _vectorizer(docs: Sequence[str], content: bool = False) -> Any:
    """TF-IDF over words and word pairs; ``content`` leaves English stop words out."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(token_pattern=_TOKEN, ngram_range=(1, 2), sublinear_tf=True,
                           stop_words="english" if content else None).fit(docs)


def _tokens(text: str) -> list[str]:
    return re.findall(_TOKEN, text.lower())


@dataclass
class _Matcher:
    docs: list[str]
    owners: list[Intent]
    vectorizers: tuple[Any, Any]  # every word; content words only
    matrices: tuple[Any, Any]
    vocabulary: frozenset[str]

    def similarities(self, text: str) -> np.ndarray:
        """Per doc the sum of both cosines: content words decide ("Is it raining?" is about the
        weather, not "Is it night?"), all words break their ties ("What should ..." is planning)."""
        return sum(((m @ v.transform([text]).T).toarray().ravel()
                    for v, m in zip(self.vectorizers, self.matrices, strict=True)), np.zeros(len(self.docs)))


@lru_cache(maxsize=8)
def _matcher(schema: Schema) -> _Matcher:
    """TF-IDF over every paraphrase of every intent; the vocabulary is every word the schema uses."""
    docs, owners = [], []
    for it in intents(schema):
        for q in questions_of(schema, it, all_phrases=True):
            docs.append(q)
            owners.append(it)
    words = [*docs, schema.qa.no_answer, *schema.qa.actions]
    for a in schema:
        words += [a.display, *a.templates, *a.answers]
        for v in a.values:
            words += [v.display, v.answer, v.sentence, *v.phrases, v.named or "", v.will or "", v.does or ""]
    vecs = (_vectorizer(docs), _vectorizer(docs, content=True))
    return _Matcher(docs, owners, vecs, tuple(v.transform(docs) for v in vecs),  # type: ignore[arg-type]
                    frozenset(t for w in words for t in _tokens(w)))


def match_question(question: str, schema: Schema | None = None) -> tuple[Intent | None, str, str | None]:
    """(intent, the schema question it matched, why not covered): intent None when the question uses
    content words the schema does not know or resembles none of its questions."""
    return _match(schema or default_schema(), question)


@lru_cache(maxsize=4096)  # an evaluation asks the same few hundred questions again and again
def _match(schema: Schema, question: str) -> tuple[Intent | None, str, str | None]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    m = _matcher(schema)
    # single letters are left over from contractions ("what's")
    unknown = [t for t in dict.fromkeys(_tokens(question))
               if t not in m.vocabulary and t not in ENGLISH_STOP_WORDS and len(t) > 1]
    if unknown:
        return None, "", f"the schema {schema.name!r} does not cover {', '.join(map(repr, unknown[:3]))}"
    sims = m.similarities(question)
    best = int(np.argmax(sims)) if len(sims) else -1
    if best < 0 or sims[best] < MIN_SIMILARITY:
        return None, "", f"the question resembles nothing the schema {schema.name!r} asks about"
    return m.owners[best], m.docs[best], None


def _closest(texts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int | None]:
    """For each text, the candidate (a list of its names) it shares most TF-IDF weight with, or None."""
    flat = [(i, n) for i, names in enumerate(candidates) for n in names if n]
    vec = _vectorizer([n for _, n in flat] + list(texts))
    sims = (vec.transform(list(texts)) @ vec.transform([n for _, n in flat]).T).toarray()
    out: list[int | None] = []
    for row in sims:
        j = int(np.argmax(row)) if row.size else -1
        out.append(flat[j][0] if j >= 0 and row[j] > 0 else None)
    return out


def _same(a: str, b: str) -> bool:
    return _tokens(a) == _tokens(b)


# ---- answering from a vote -------------------------------------------------------------------
@dataclass
class _Decision:
    key: str | None  # what the vote says (value, facet answer, action, yes/no, behavior text); None: no answer
    confidence: float
    evidence: list[Neighbor]
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # every key the options may name -> its share


def _abstained(av: AttributeVote, schema: Schema) -> str | None:
    if not av.abstained:
        return None
    if av.reason:
        return f"the vote on {schema[av.attribute].display.lower()} abstained: {av.reason}"
    if not av.voters and not av.share:
        return f"no neighbour has a {schema[av.attribute].display.lower()} label"
    lean = f" for {schema[av.attribute].display_of(av.lean)}" if av.lean != UNKNOWN else ""
    return f"the voters on {schema[av.attribute].display.lower()} split ({av.share:.0%} at most{lean})"


def _dedupe(neighbours: Sequence[Neighbor]) -> list[Neighbor]:
    return list({n.id: n for n in neighbours}.values())


def _decide(schema: Schema, intent: Intent, votes: Sequence[Vote]) -> _Decision:
    if intent.kind == "behavior":
        return _decide_behavior(schema, votes)
    if len(votes) > 1:
        return _decide_clip(schema, intent, votes)
    vote = votes[0]
    if intent.kind == "planning":
        needed = list(dict.fromkeys(a for r in schema.qa.rules for a in r.when))
        avs = [vote.attributes[a] for a in needed]
        why = next((r for r in (_abstained(av, schema) for av in avs) if r), None)
        if why:
            return _Decision(None, 0.0, [], why)
        action = schema.qa.action(vote.labels())
        conf = min((av.share for av in avs), default=1.0)
        return _Decision(action, conf, _dedupe([n for av in avs for n in av.voters]),
                         None if action else "no planning rule matches", {action: conf} if action else {})
    if intent.kind == "prediction":
        return _decide_prediction(schema, intent, vote)
    av = vote.attributes[intent.attribute]  # type: ignore[index]
    why = _abstained(av, schema)
    if intent.kind == "yes_no" and why and av.reason is None and av.voters:
        # Undecided among values is still a vote on "is it this value?": the voters split elsewhere can
        # agree that it is not (No, with the share of the voters not saying it; the threshold applies).
        share = av.scores.get(intent.value, 0.0)  # type: ignore[arg-type]
        against = [n for n in av.pool(vote) if n.labels.get(av.attribute, UNKNOWN) not in (UNKNOWN, intent.value)]
        return _Decision(schema.qa.no, 1.0 - share, against, None, {schema.qa.yes: share, schema.qa.no: 1.0 - share})
    if why:
        return _Decision(None, 0.0, [], why)
    pool = av.pool(vote)
    if intent.kind == "attribute":
        return _Decision(av.value, av.share, list(av.voters), None, dict(av.scores))
    if intent.kind == "yes_no":
        share = av.scores.get(intent.value, 0.0)  # type: ignore[arg-type]
        yes = av.value == intent.value
        against = [n for n in pool if n.labels.get(av.attribute, UNKNOWN) not in (UNKNOWN, intent.value)]
        scores = {schema.qa.yes: share, schema.qa.no: 1.0 - share}
        return (_Decision(schema.qa.yes, share, list(av.voters), None, scores) if yes
                else _Decision(schema.qa.no, 1.0 - share, against, None, scores))
    facet = schema[intent.attribute].facets[intent.facet]  # type: ignore[index]
    answer = facet.answers.get(av.value)
    scores: dict[str, float] = {}
    for value, x in facet.answers.items():
        scores[x] = scores.get(x, 0.0) + av.scores.get(value, 0.0)
    if answer is None:
        shown = schema[av.attribute].display_of(av.value)
        return _Decision(None, 0.0, list(av.voters), f"the vote says {shown}, where this question does not apply",
                         scores)
    return _Decision(answer, scores[answer], [n for n in pool if facet.answers.get(n.labels.get(av.attribute, ""))
                                              == answer], None, scores)


def _decide_prediction(schema: Schema, intent: Intent, vote: Vote) -> _Decision:
    """Yes when the vote sees the asked place now and the schema's stage rules let the drive reach the
    asked stage there from the stage the vote sees; else No (share: the voters not seeing the place)."""
    place, stage = place_attribute(schema), stage_attribute(schema)
    ap, ast = vote.attributes[place.name], vote.attributes[stage.name]  # type: ignore[union-attr]
    why = _abstained(ap, schema) or _abstained(ast, schema)
    if why:
        return _Decision(None, 0.0, [], why)
    share_place = ap.scores.get(intent.value, 0.0)  # type: ignore[arg-type]
    scores = {schema.qa.yes: min(share_place, ast.share), schema.qa.no: 1.0 - share_place}
    if ap.value != intent.value:
        against = [n for n in ap.pool(vote) if n.labels.get(place.name) != intent.value]  # type: ignore[union-attr]
        return _Decision(schema.qa.no, 1.0 - share_place, against, None, scores)
    order = event_stages(schema)
    reachable = intent.stage in event_stages(schema, intent.value) and (
        ast.value not in order or order.index(intent.stage) >= order.index(ast.value))  # type: ignore[arg-type]
    conf = min(ap.share, ast.share)
    return _Decision(schema.qa.yes if reachable else schema.qa.no, conf, _dedupe([*ap.voters, *ast.voters]), None,
                     {schema.qa.yes: conf, schema.qa.no: 1.0 - conf} if reachable else {schema.qa.no: conf})


def _decide_behavior(schema: Schema, votes: Sequence[Vote]) -> _Decision:
    """A clip's behavior from its frames' votes (``questions.clip_behavior`` on the voted labels);
    confidence: the mean over the frames that show the place of their lower place/stage share."""
    if len(votes) < 2:
        return _Decision(None, 0.0, [], "behavior questions are about a clip; this is one frame")
    place, stage = place_attribute(schema), stage_attribute(schema)
    ok = [v for v in votes if not v.attributes[place.name].abstained and not v.attributes[stage.name].abstained]  # type: ignore[union-attr]
    if not ok:
        why = _abstained(votes[0].attributes[place.name], schema) or _abstained(votes[0].attributes[stage.name], schema)  # type: ignore[union-attr]
        return _Decision(None, 0.0, [], f"every frame's vote abstained ({why})")
    labels = [v.labels() for v in ok]
    value, stages = clip_behavior(schema, labels)
    found = clip_place(schema, labels)
    rows = found[1] if found else list(range(len(ok)))
    conf = float(np.mean([min(ok[i].attributes[place.name].share, ok[i].attributes[stage.name].share)  # type: ignore[union-attr]
                          for i in rows]))
    evidence = _dedupe([n for i in rows for n in ok[i].attributes[place.name].voters])  # type: ignore[union-attr]
    text = behavior_text(schema, value, stages)
    return _Decision(text, conf, evidence, None, {text: conf})


def _decide_clip(schema: Schema, intent: Intent, votes: Sequence[Vote]) -> _Decision:
    """A frame question about a clip: each frame answers; the answer most frames give wins, with
    confidence the mean over all frames of the share behind it (0 for frames that say otherwise)."""
    per = [_decide(schema, intent, [v]) for v in votes]
    keys = [d.key for d in per if d.key is not None]
    if not keys:
        return _Decision(None, 0.0, [], per[0].reason)
    best = max(dict.fromkeys(keys), key=keys.count)
    agree = [d for d in per if d.key == best]
    conf = float(sum(d.confidence for d in agree) / len(per))
    return _Decision(best, conf, _dedupe([n for d in agree for n in d.evidence]), None, {best: conf})


# ---- options ---------------------------------------------------------------------------------
def _option_keys(schema: Schema, intent: Intent, options: Sequence[str], decided: _Decision) -> list[str | None]:
    """What each option says, as a decision key (None: the no-answer option or nothing recognised)."""
    keys: list[str | None] = [None] * len(options)
    live = [i for i, o in enumerate(options) if not _same(o, schema.qa.no_answer)]
    if intent.kind == "attribute":
        a = schema[intent.attribute]  # type: ignore[index]
        names = [[v.display, v.answer, v.sentence, *v.phrases] for v in a.values]
        for i, j in zip(live, _closest([options[i] for i in live], names), strict=True):
            keys[i] = None if j is None else a.values[j].name
        return keys
    if intent.kind in ("yes_no", "prediction"):
        for i in live:
            keys[i] = next((w for w in (schema.qa.yes, schema.qa.no) if _same(options[i], w)), None)
        return keys
    if intent.kind == "facet":
        cands = list(dict.fromkeys(schema[intent.attribute].facets[intent.facet].answers.values()))  # type: ignore[index]
    elif intent.kind == "planning":
        cands = schema.qa.actions
    else:  # behavior: the options are free texts; only the one closest to what the vote says says it
        if decided.key and live:
            vec = _vectorizer([decided.key, *(options[i] for i in live)])
            sims = (vec.transform([options[i] for i in live]) @ vec.transform([decided.key]).T).toarray().ravel()
            if sims.max() > 0:
                keys[live[int(np.argmax(sims))]] = decided.key
        return keys
    if cands:
        for i, j in zip(live, _closest([options[i] for i in live], [[c] for c in cands]), strict=True):
            keys[i] = None if j is None else cands[j]
    return keys


def _choose(schema: Schema, intent: Intent, options: Sequence[str], decided: _Decision) -> tuple[int | None, float]:
    """The best-scoring option (its score: the vote share of what it says); on a tie the one saying
    what the vote decided, else the first."""
    keys = _option_keys(schema, intent, options, decided)
    scores = [decided.scores.get(k, 0.0) if k is not None else -1.0 for k in keys]
    if not scores or max(scores) < 0:
        return None, 0.0
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    pick = next((i for i in tied if keys[i] == decided.key), tied[0])
    return pick, float(top)


# ---- the interface ---------------------------------------------------------------------------
def answer(
    question: str,
    votes: Vote | Sequence[Vote],
    *,
    options: Sequence[str] | None = None,
    schema: Schema | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Answer:
    """Answer ``question`` from the k-NN votes of one frame (a Vote) or of a clip's frames in time
    order. ``options`` (or DriveLM's inline "A. ... B. ..." in the question) make it multiple choice:
    the best-scoring option is chosen. Below ``threshold`` (or when the vote abstained) the answer is
    the schema's ``no_answer`` with the reason, and ``choice`` the no-answer option if one is given."""
    schema = schema or default_schema()
    q = check_question(question)
    if options is None:
        stem, inline = split_options(q)
        q, options = (stem, inline) if inline else (q, None)
    lead = schema.qa.choose.strip()
    if lead and q.endswith(lead):  # DriveLM's lead-in before inline options is not part of the question
        q = q[: -len(lead)].strip()
    opts = list(options or [])
    if options is not None and len(opts) < 2:
        raise QuestionError(f"a multiple-choice question needs at least 2 options; got {len(opts)}")
    frames = [votes] if isinstance(votes, Vote) else list(votes)
    if not frames:
        raise ValueError("no votes to answer from")
    no_option = next((i for i, o in enumerate(opts) if _same(o, schema.qa.no_answer)), None)
    intent, matched, why = match_question(q, schema)
    if intent is None:
        return Answer(schema.qa.no_answer, 0.0, [], no_option, why, None, None, definite=False)
    decided = _decide(schema, intent, frames)
    text, conf = decided.key, decided.confidence
    choice = None
    if opts and decided.key is not None:
        choice, conf = _choose(schema, intent, opts, decided)
        text = None if choice is None else opts[choice]
        if choice is None:
            decided.reason = "no option says anything the vote can weigh"
    reason = decided.reason
    if text is not None and conf < threshold:
        said = text if opts else free_answer(schema, intent, text)
        lean = f" (leaning to {said!r})" if said else ""
        reason, text = f"confidence {conf:.2f} is below the threshold {threshold:.2f}{lean}", None
    if text is None:
        return Answer(schema.qa.no_answer, conf if decided.key is not None else 0.0, decided.evidence, no_option,
                      reason, intent, matched, definite=False)
    if not opts:
        text = free_answer(schema, intent, text)
    return Answer(text, float(conf), decided.evidence, choice, None, intent, matched)


class RetrievalAnswerer:
    """Answers about an image or a clip from its k-NN votes against an index (``core.pipeline``)."""

    name = "retrieval"

    def __init__(self, model: SceneModel, store: IndexStore, *, k: int = 5, threshold: float = DEFAULT_THRESHOLD,
                 **vote_kw: object) -> None:
        self.model, self.store, self.k, self.threshold, self.vote_kw = model, store, k, threshold, vote_kw

    def votes(self, path: str | Path) -> list[Vote]:
        """The votes of an image (one) or of a clip's sampled frames (in time order)."""
        from pathlib import Path as _Path

        from core.pipeline import ImageResult, classify_path

        result = classify_path(_Path(path), self.model, self.store, k=self.k, **self.vote_kw)
        return [result.vote] if isinstance(result, ImageResult) else list(result.votes)

    def answer(self, question: str, path: str | Path, options: Sequence[str] | None = None) -> Answer:
        q = check_question(question)  # before the (slow) votes
        return answer(q, self.votes(path), options=options, schema=self.store.schema, threshold=self.threshold)


__all__ = [
    "ANSWERERS", "DEFAULT_THRESHOLD", "MAX_QUESTION_CHARS", "Answer", "QuestionError", "RetrievalAnswerer", "answer",
    "check_question", "match_question",
]

"""Answerers: one interface, ``answer(question, ...) -> Answer`` (text, confidence, evidence, choice).

The retrieval-grounded answerer maps a question to what the schema can ask (an :class:`Intent` of
``core.vqa.questions``) and answers from the k-NN vote (``core.predict.vote_batch`` through
``core.pipeline``): the confidence is the vote share of what it says, the evidence the voters.

Reading the question (TF-IDF against the schema's own questions) is ``core.vqa.answer_match``;
deciding from the vote and choosing an option is ``core.vqa.answer_vote``.

The answerer never makes up a confident answer: it says the schema's ``no_answer`` ("No definite
answer") with the reason when the vote abstained (a split vote, or "unlike this index"), when the
confidence is below the threshold, when the question does not apply to what the vote saw, or when the
schema does not cover the question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.predict import Neighbor, Vote
from core.schema import Schema, default_schema
from core.vqa.answer_match import match_question, same_words
from core.vqa.answer_objects import decide_objects
from core.vqa.answer_vote import choose, decide
from core.vqa.drivelm_format import option_letter, split_options
from core.vqa.questions import Intent, free_answer

if TYPE_CHECKING:
    from pathlib import Path

    from core.types import IndexStore, SceneModel

MAX_QUESTION_CHARS = 512
DEFAULT_THRESHOLD = 0.5  # a strict majority of the voters behind the answer
ANSWERERS = ("retrieval",)


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


# ---- the interface ---------------------------------------------------------------------------
def answer(
    question: str,
    votes: Vote | Sequence[Vote],
    *,
    options: Sequence[str] | None = None,
    schema: Schema | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    objects: Mapping[str, Mapping[str, Any]] | None = None,
) -> Answer:
    """Answer ``question`` from the k-NN votes of one frame (a Vote) or of a clip's frames in time
    order. ``options`` (or DriveLM's inline "A. ... B. ..." in the question) make it multiple choice:
    the best-scoring option is chosen. Below ``threshold`` (or when the vote abstained) the answer is
    the schema's ``no_answer`` with the reason, and ``choice`` the no-answer option if one is given.
    ``objects``: the index's object annotations by frame path (core.synth.objects.read_objects), which
    the important-objects question votes on (core.vqa.answer_objects: kinds, never positions)."""
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
    no_option = next((i for i, o in enumerate(opts) if same_words(o, schema.qa.no_answer)), None)
    intent, matched, why = match_question(q, schema)
    if intent is None:
        return Answer(schema.qa.no_answer, 0.0, [], no_option, why, None, None, definite=False)
    decided = decide_objects(schema, frames, objects) if intent.kind == "objects" else decide(schema, intent, frames)
    text, conf = decided.key, decided.confidence
    choice = None
    if opts and decided.key is not None:
        choice, conf = choose(schema, intent, opts, decided)
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
        self._objects: Mapping[str, Mapping[str, Any]] | None | bool = False  # read on the first question

    def objects(self) -> Mapping[str, Mapping[str, Any]] | None:
        """The index dataset's object annotations (None without ``objects.jsonl``), read once."""
        if self._objects is False:
            from core.synth.objects import read_objects

            self._objects = read_objects(self.store.data_root)
        return self._objects  # type: ignore[return-value]

    def votes(self, path: str | Path) -> list[Vote]:
        """The votes of an image (one) or of a clip's sampled frames (in time order)."""
        from pathlib import Path as _Path

        from core.pipeline import ImageResult, classify_path

        result = classify_path(_Path(path), self.model, self.store, k=self.k, **self.vote_kw)
        return [result.vote] if isinstance(result, ImageResult) else list(result.votes)

    def answer(self, question: str, path: str | Path, options: Sequence[str] | None = None) -> Answer:
        q = check_question(question)  # before the (slow) votes
        return answer(q, self.votes(path), options=options, schema=self.store.schema, threshold=self.threshold,
                      objects=self.objects())


__all__ = [
    "ANSWERERS", "DEFAULT_THRESHOLD", "MAX_QUESTION_CHARS", "Answer", "QuestionError", "RetrievalAnswerer", "answer",
    "check_question", "match_question",
]

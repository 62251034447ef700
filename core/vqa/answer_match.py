"""Reading a question as what the schema can ask: an :class:`Intent` of ``core.vqa.questions``.

Mapping questions (and options) to the schema uses TF-IDF token overlap (scikit-learn) with the
schema's own question paraphrases, answer words, display names and prompt phrases, not the model's
text tower: CLIP-style text towers are trained on captions, not questions ("Is the road surface
wet?" and "Is the road surface dry?" embed almost alike), the bundled model's is small, and the
mapping would change with the model; token overlap is deterministic, the same for every registry
model, and its reason can be shown (the matched question).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from core.schema import Schema, default_schema
from core.vqa.questions import Intent, intents, questions_of

MIN_SIMILARITY = 0.25  # TF-IDF cosine below which a question matches nothing the schema asks
_TOKEN = r"(?u)\b\w[\w+-]*"


def vectorizer(docs: Sequence[str], content: bool = False) -> Any:
    """TF-IDF over words and word pairs; ``content`` leaves English stop words out."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(token_pattern=_TOKEN, ngram_range=(1, 2), sublinear_tf=True,
                           stop_words="english" if content else None).fit(docs)


def tokens(text: str) -> list[str]:
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
    vecs = (vectorizer(docs), vectorizer(docs, content=True))
    return _Matcher(docs, owners, vecs, tuple(v.transform(docs) for v in vecs),  # type: ignore[arg-type]
                    frozenset(t for w in words for t in tokens(w)))


def match_question(question: str, schema: Schema | None = None) -> tuple[Intent | None, str, str | None]:
    """(intent, the schema question it matched, why not covered): intent None when the question uses
    content words the schema does not know or resembles none of its questions."""
    return _match(schema or default_schema(), question)


@lru_cache(maxsize=4096)  # an evaluation asks the same few hundred questions again and again
def _match(schema: Schema, question: str) -> tuple[Intent | None, str, str | None]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    m = _matcher(schema)
    # single letters are left over from contractions ("what's")
    unknown = [t for t in dict.fromkeys(tokens(question))
               if t not in m.vocabulary and t not in ENGLISH_STOP_WORDS and len(t) > 1]
    if unknown:
        return None, "", f"the schema {schema.name!r} does not cover {', '.join(map(repr, unknown[:3]))}"
    sims = m.similarities(question)
    best = int(np.argmax(sims)) if len(sims) else -1
    if best < 0 or sims[best] < MIN_SIMILARITY:
        return None, "", f"the question resembles nothing the schema {schema.name!r} asks about"
    return m.owners[best], m.docs[best], None


def closest(texts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int | None]:
    """For each text, the candidate (a list of its names) it shares most TF-IDF weight with, or None."""
    flat = [(i, n) for i, names in enumerate(candidates) for n in names if n]
    vec = vectorizer([n for _, n in flat] + list(texts))
    sims = (vec.transform(list(texts)) @ vec.transform([n for _, n in flat]).T).toarray()
    out: list[int | None] = []
    for row in sims:
        j = int(np.argmax(row)) if row.size else -1
        out.append(flat[j][0] if j >= 0 and row[j] > 0 else None)
    return out


def same_words(a: str, b: str) -> bool:
    return tokens(a) == tokens(b)


__all__ = ["MIN_SIMILARITY", "closest", "match_question", "same_words", "tokens", "vectorizer"]

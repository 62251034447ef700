"""Answering from the k-NN vote: what the vote says to a question's intent, with its share and
voters, and which multiple-choice option says it.

Each decision is a key (an attribute value, a facet answer, a planning action, the schema's yes/no,
or a behavior text), its confidence (the vote share behind it), the voters as evidence, and, when
there is no answer, the reason (a split vote, "unlike this index", a question that does not apply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.predict import AttributeVote, Neighbor, Vote
from core.schema import UNKNOWN, Schema
from core.vqa.answer_match import closest, same_words, vectorizer
from core.vqa.questions import (
    Intent,
    behavior_text,
    clip_behavior,
    clip_place,
    event_stages,
    place_attribute,
    stage_attribute,
)


@dataclass
class Decision:
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


def decide(schema: Schema, intent: Intent, votes: Sequence[Vote]) -> Decision:
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
            return Decision(None, 0.0, [], why)
        action = schema.qa.action(vote.labels())
        conf = min((av.share for av in avs), default=1.0)
        return Decision(action, conf, _dedupe([n for av in avs for n in av.voters]),
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
        return Decision(schema.qa.no, 1.0 - share, against, None, {schema.qa.yes: share, schema.qa.no: 1.0 - share})
    if why:
        return Decision(None, 0.0, [], why)
    pool = av.pool(vote)
    if intent.kind == "attribute":
        return Decision(av.value, av.share, list(av.voters), None, dict(av.scores))
    if intent.kind == "yes_no":
        share = av.scores.get(intent.value, 0.0)  # type: ignore[arg-type]
        yes = av.value == intent.value
        against = [n for n in pool if n.labels.get(av.attribute, UNKNOWN) not in (UNKNOWN, intent.value)]
        scores = {schema.qa.yes: share, schema.qa.no: 1.0 - share}
        return (Decision(schema.qa.yes, share, list(av.voters), None, scores) if yes
                else Decision(schema.qa.no, 1.0 - share, against, None, scores))
    facet = schema[intent.attribute].facets[intent.facet]  # type: ignore[index]
    answer = facet.answers.get(av.value)
    scores: dict[str, float] = {}
    for value, x in facet.answers.items():
        scores[x] = scores.get(x, 0.0) + av.scores.get(value, 0.0)
    if answer is None:
        shown = schema[av.attribute].display_of(av.value)
        return Decision(None, 0.0, list(av.voters), f"the vote says {shown}, where this question does not apply",
                         scores)
    return Decision(answer, scores[answer], [n for n in pool if facet.answers.get(n.labels.get(av.attribute, ""))
                                              == answer], None, scores)


def _decide_prediction(schema: Schema, intent: Intent, vote: Vote) -> Decision:
    """Yes when the vote sees the asked place now and the schema's stage rules let the drive reach the
    asked stage there from the stage the vote sees; else No (share: the voters not seeing the place)."""
    place, stage = place_attribute(schema), stage_attribute(schema)
    ap, ast = vote.attributes[place.name], vote.attributes[stage.name]  # type: ignore[union-attr]
    why = _abstained(ap, schema) or _abstained(ast, schema)
    if why:
        return Decision(None, 0.0, [], why)
    share_place = ap.scores.get(intent.value, 0.0)  # type: ignore[arg-type]
    scores = {schema.qa.yes: min(share_place, ast.share), schema.qa.no: 1.0 - share_place}
    if ap.value != intent.value:
        against = [n for n in ap.pool(vote) if n.labels.get(place.name) != intent.value]  # type: ignore[union-attr]
        return Decision(schema.qa.no, 1.0 - share_place, against, None, scores)
    order = event_stages(schema)
    reachable = intent.stage in event_stages(schema, intent.value) and (
        ast.value not in order or order.index(intent.stage) >= order.index(ast.value))  # type: ignore[arg-type]
    conf = min(ap.share, ast.share)
    return Decision(schema.qa.yes if reachable else schema.qa.no, conf, _dedupe([*ap.voters, *ast.voters]), None,
                     {schema.qa.yes: conf, schema.qa.no: 1.0 - conf} if reachable else {schema.qa.no: conf})


def _decide_behavior(schema: Schema, votes: Sequence[Vote]) -> Decision:
    """A clip's behavior from its frames' votes (``questions.clip_behavior`` on the voted labels);
    confidence: the mean over the frames that show the place of their lower place/stage share."""
    if len(votes) < 2:
        return Decision(None, 0.0, [], "behavior questions are about a clip; this is one frame")
    place, stage = place_attribute(schema), stage_attribute(schema)
    ok = [v for v in votes if not v.attributes[place.name].abstained and not v.attributes[stage.name].abstained]  # type: ignore[union-attr]
    if not ok:
        why = _abstained(votes[0].attributes[place.name], schema) or _abstained(votes[0].attributes[stage.name], schema)  # type: ignore[union-attr]
        return Decision(None, 0.0, [], f"every frame's vote abstained ({why})")
    labels = [v.labels() for v in ok]
    value, stages = clip_behavior(schema, labels)
    found = clip_place(schema, labels)
    rows = found[1] if found else list(range(len(ok)))
    conf = float(np.mean([min(ok[i].attributes[place.name].share, ok[i].attributes[stage.name].share)  # type: ignore[union-attr]
                          for i in rows]))
    evidence = _dedupe([n for i in rows for n in ok[i].attributes[place.name].voters])  # type: ignore[union-attr]
    text = behavior_text(schema, value, stages)
    return Decision(text, conf, evidence, None, {text: conf})


def _decide_clip(schema: Schema, intent: Intent, votes: Sequence[Vote]) -> Decision:
    """A frame question about a clip: each frame answers; the answer most frames give wins, with
    confidence the mean over all frames of the share behind it (0 for frames that say otherwise)."""
    per = [decide(schema, intent, [v]) for v in votes]
    keys = [d.key for d in per if d.key is not None]
    if not keys:
        return Decision(None, 0.0, [], per[0].reason)
    best = max(dict.fromkeys(keys), key=keys.count)
    agree = [d for d in per if d.key == best]
    conf = float(sum(d.confidence for d in agree) / len(per))
    return Decision(best, conf, _dedupe([n for d in agree for n in d.evidence]), None, {best: conf})


# ---- options ---------------------------------------------------------------------------------
def _option_keys(schema: Schema, intent: Intent, options: Sequence[str], decided: Decision) -> list[str | None]:
    """What each option says, as a decision key (None: the no-answer option or nothing recognised)."""
    keys: list[str | None] = [None] * len(options)
    live = [i for i, o in enumerate(options) if not same_words(o, schema.qa.no_answer)]
    if intent.kind == "attribute":
        a = schema[intent.attribute]  # type: ignore[index]
        names = [[v.display, v.answer, v.sentence, *v.phrases] for v in a.values]
        for i, j in zip(live, closest([options[i] for i in live], names), strict=True):
            keys[i] = None if j is None else a.values[j].name
        return keys
    if intent.kind in ("yes_no", "prediction"):
        for i in live:
            keys[i] = next((w for w in (schema.qa.yes, schema.qa.no) if same_words(options[i], w)), None)
        return keys
    if intent.kind == "facet":
        cands = list(dict.fromkeys(schema[intent.attribute].facets[intent.facet].answers.values()))  # type: ignore[index]
    elif intent.kind == "planning":
        cands = schema.qa.actions
    else:  # behavior: the options are free texts; only the one closest to what the vote says says it
        if decided.key and live:
            vec = vectorizer([decided.key, *(options[i] for i in live)])
            sims = (vec.transform([options[i] for i in live]) @ vec.transform([decided.key]).T).toarray().ravel()
            if sims.max() > 0:
                keys[live[int(np.argmax(sims))]] = decided.key
        return keys
    if cands:
        for i, j in zip(live, closest([options[i] for i in live], [[c] for c in cands]), strict=True):
            keys[i] = None if j is None else cands[j]
    return keys


def choose(schema: Schema, intent: Intent, options: Sequence[str], decided: Decision) -> tuple[int | None, float]:
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


__all__ = ["Decision", "choose", "decide"]

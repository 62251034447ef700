"""The retrieval answerer on DriveLM's important-objects question: which kinds of object, by neighbour vote.

A k-NN vote knows its neighbours, not where things are in the asked image, so this answerer never
gives positions (no ``<c1,CAM_FRONT,x,y>``: making them up would score as found objects by chance).
It says which object classes the neighbours' own important objects hold (their annotations,
``objects.jsonl`` of the index's dataset, core.synth.objects): a class is named when more than half
of the annotated voters show it; the confidence is the smallest share among the named classes (or,
when none is named, the share of voters showing none of the most common class). Without annotations
for the voters there is no definite answer, with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.predict import Vote
from core.schema import Schema
from core.vqa.answer_vote import Decision
from core.vqa.question_objects import important_objects, listed

MAJORITY = 0.5  # a class is named when more than this share of the annotated voters show it


def objects_text(schema: Schema, classes: Sequence[str]) -> str:
    """The answer naming ``classes`` without positions (the schema's ``unplaced`` form)."""
    f = schema.qa.objects
    if not classes:
        return f.none
    return f.unplaced.replace("{objects}", listed([f.classes[c] for c in classes]))


def decide_objects(schema: Schema, votes: Sequence[Vote], objects: Mapping[str, Mapping[str, Any]] | None) -> Decision:
    """What the neighbours of one frame say to the important-objects question (see the module docstring)."""
    if len(votes) != 1:
        return Decision(None, 0.0, [], "object questions are about one frame; this is a clip")
    vote = votes[0]
    unlike = next((av.reason for av in vote.attributes.values() if av.reason), None)
    if unlike:
        return Decision(None, 0.0, [], f"the vote abstained: {unlike}")
    if not objects:
        return Decision(None, 0.0, [], "the index's dataset has no object annotations (objects.jsonl), and "
                                       "retrieval cannot locate objects in the image")
    voters = [n for n in vote.neighbors if n.path in objects]
    if not voters:
        return Decision(None, 0.0, [], "none of the neighbours has object annotations")
    shown = [{o["class"] for o in important_objects(schema, objects[n.path]["objects"], objects[n.path]["size"])}
             for n in voters]
    share = {c: sum(c in s for s in shown) / len(voters) for c in schema.qa.objects.classes}
    named = [c for c, x in share.items() if x > MAJORITY]
    conf = min((share[c] for c in named), default=1.0 - max(share.values(), default=0.0))
    text = objects_text(schema, named)
    return Decision(text, float(conf), voters, None, {text: float(conf)})


__all__ = ["MAJORITY", "decide_objects", "objects_text"]

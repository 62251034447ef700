"""DriveLM's important-objects question, answered from a frame's object annotations.

The annotations are the renderer's (core.synth.objects: class, centre, box in image pixels); every
word and the position frame come from the schema's ``questions.objects`` block. Positions are
written as DriveLM's ``<cN,CAM_FRONT,x,y>`` with one decimal, scaled to the schema's ``frame``
(DriveLM-nuScenes' 1600x900 camera), so the challenge's 16 px match radius means the same here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.schema import Schema


def important_objects(schema: Schema, objects: Sequence[Mapping[str, Any]], size: Sequence[float]) -> list[dict[str, Any]]:
    """A frame's important objects (annotations of core.synth.objects in an image of ``size``
    (width, height)): the schema's ``max`` nearest of the classes it phrases with at least its
    ``min_area`` of the image visible."""
    f = schema.qa.objects
    least = f.min_area * float(size[0]) * float(size[1])
    known = [dict(o) for o in objects if o["class"] in f.classes and o.get("pixels", least) >= least]
    return sorted(known, key=lambda o: o.get("distance", 0.0))[: f.most]


def object_point(schema: Schema, obj: Mapping[str, Any], size: Sequence[float]) -> tuple[float, float]:
    """An object's centre scaled from its image (``size``) to the schema's position frame."""
    fw, fh = schema.qa.objects.frame
    return float(obj["centre"][0]) * fw / float(size[0]), float(obj["centre"][1]) * fh / float(size[1])


def object_tag(schema: Schema, i: int, point: Sequence[float]) -> str:
    """DriveLM's object id ``<c{i+1},CAMERA,x,y>``; one decimal always, as the match score only reads
    numbers with a decimal point."""
    return f"<c{i + 1},{schema.qa.objects.camera},{point[0]:.1f},{point[1]:.1f}>"


def listed(items: Sequence[str]) -> str:
    """DriveLM's lists: "a", "a and b", "a, b, and c"."""
    if len(items) < 3:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def objects_answer(schema: Schema, objects: Sequence[Mapping[str, Any]], size: Sequence[float]) -> str:
    """The free-form answer naming a frame's important objects, where they are and their ids."""
    f = schema.qa.objects
    important = important_objects(schema, objects, size)
    if not important:
        return f.none
    phrases = []
    for o in important:
        third = min(2, max(0, int(3 * float(o["centre"][0]) / float(size[0]))))
        where = f.where[third * len(f.where) // 3] if f.where else ""
        phrases.append(f"{f.classes[o['class']]} {where}".strip())
    ids = [object_tag(schema, i, object_point(schema, o, size)) for i, o in enumerate(important)]
    template = f.answer_one if len(important) == 1 else f.answer
    return template.replace("{objects}", listed(phrases)).replace("{ids}", listed(ids))


_OBJECT_ID = re.compile(r"<c\d+,[^,<>]+,\d+\.\d+,\d+\.\d+>")


def object_ids(text: str) -> list[str]:
    """The DriveLM object ids ``<cN,CAMERA,x,y>`` a text names."""
    return _OBJECT_ID.findall(text)


__all__ = ["object_ids", "important_objects", "listed", "object_point", "object_tag", "objects_answer"]

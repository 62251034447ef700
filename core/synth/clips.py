"""Clips that drive through one place: driving, approaching, entering, passing, driving.

Attributes are found by the render keys their values carry (``feature`` marks the place attribute,
``distance`` the stage attribute), so no attribute or value name is spelled here. Weather, surface,
lighting and road type stay fixed for a clip; the camera, road and roadside come from one clip seed
and only ``travel`` (metres driven) changes, so the place slides smoothly from far to near to at.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from core.schema import Attribute, Schema, SchemaError, default_schema
from core.synth.render import Size, place_distance, render_params

STAGE_ORDER = ("far", "near", "at")
CRUISE_STEP_M = 6.0  # metres per frame while just driving (about 12 m/s at 2 fps)


def attribute_with(schema: Schema, key: str) -> Attribute:
    """The attribute whose values carry render key ``key`` (e.g. feature, distance)."""
    for a in schema:
        if a.values and all(key in v.render for v in a.values):
            return a
    raise SchemaError(f"no attribute of schema {schema.name!r} has render key {key!r} on every value")


def value_with(attr: Attribute, key: str, wanted: object) -> str:
    for v in attr.values:
        if v.render.get(key) == wanted:
            return v.name
    raise SchemaError(f"attribute {attr.name!r} has no value with render {key}={wanted!r}")


def clip_plan(schema: Schema | None = None, rng: random.Random | None = None, fps: float = 2.0,
              duration_s: float = 8.0, place: str | None = None) -> list[dict]:
    """Per-frame plan of one clip through a place (uniformly drawn unless ``place`` is given).

    Each entry: ``labels`` (a valid label set), ``frame_index``, ``timestamp_s``, ``progress``
    (0..1 within the frame's stage), ``clip_progress`` (0..1 over the clip) and ``stage_key``
    (the render distance: none/far/near/at).
    """
    schema = schema or default_schema()
    rng = rng or random.Random(0)
    place_attr = attribute_with(schema, "feature")
    stage_attr = attribute_with(schema, "distance")
    plain_place = value_with(place_attr, "feature", "none")
    driving = value_with(stage_attr, "distance", "none")
    place = place or rng.choice(place_attr.value_names)
    fixed = schema.sample(rng, {place_attr.name: place})
    n = max(1, int(round(fps * duration_s)))
    stages = [
        v for v in schema.allowed(stage_attr.name, {place_attr.name: place})
        if stage_attr.value(v).render.get("distance") in STAGE_ORDER
    ]
    stages.sort(key=lambda v: STAGE_ORDER.index(stage_attr.value(v).render["distance"]))
    segments: list[tuple[str, str, int]] = []  # (place value, stage value, frames)
    if place == plain_place or not stages or n < len(stages) + 2:
        segments.append((plain_place, driving, n) if place == plain_place or not stages else
                        (place, stages[0], n))
    else:
        lead = max(1, int(round(0.15 * n)))
        tail = max(1, int(round(0.15 * n)))
        mid = n - lead - tail
        per, extra = divmod(mid, len(stages))
        segments.append((plain_place, driving, lead))
        for i, st in enumerate(stages):
            segments.append((place, st, per + (1 if i < extra else 0)))
        segments.append((plain_place, driving, tail))
    return plan_frames(schema, segments, fixed, place, fps)


def plan_frames(schema: Schema, segments: Sequence[tuple[str, str, int]], fixed: Mapping[str, str], place: str,
                fps: float) -> list[dict]:
    """The per-frame plan of a clip made of ``segments`` (place value, stage value, frames), the
    other attributes held at ``fixed``: what ``render_clip`` draws frame by frame."""
    place_attr, stage_attr = attribute_with(schema, "feature"), attribute_with(schema, "distance")
    n = sum(k for _, _, k in segments)
    plan: list[dict] = []
    for pl, st, k in segments:
        for j in range(k):
            labels = {**fixed, place_attr.name: pl, stage_attr.name: st}
            schema.check(labels)
            i = len(plan)
            plan.append({
                "labels": labels,
                "frame_index": i,
                "timestamp_s": round(i / fps, 4),
                "progress": (j + 0.5) / k,
                "clip_progress": i / max(1, n - 1),
                "stage_key": str(stage_attr.value(st).render.get("distance", "none")),
                "clip_place": place,
            })
    return plan


def _frame_params(schema: Schema, frame: dict) -> dict:
    """Render params of a frame; driving frames keep the clip's place kind (distance none) so
    the camera lane and traffic match the frames that show the place."""
    params = schema.render_params(frame["labels"])
    place_attr = attribute_with(schema, "feature")
    if frame["stage_key"] == "none":
        params.update(place_attr.value(frame["clip_place"]).render)
        params["distance"] = "none"
    return params


def clip_frames(plan: list[dict], seed: int, size: Size = (320, 180), schema: Schema | None = None) -> list[dict]:
    """Add ``params``, ``travel`` (m) and ``place_z`` (m, None when no place is shown) to a plan."""
    schema = schema or default_schema()
    out = [dict(f, params=_frame_params(schema, f)) for f in plan]
    zs = [place_distance(f["params"], seed, size, f["progress"]) if f["stage_key"] != "none" else None for f in out]
    shown = [i for i, z in enumerate(zs) if z is not None]
    if not shown:
        for i, f in enumerate(out):
            f["travel"], f["place_z"] = i * CRUISE_STEP_M, None
        return out
    z_ref = zs[shown[0]]
    for i in shown:
        out[i]["travel"], out[i]["place_z"] = z_ref - zs[i], zs[i]
    first, last = shown[0], shown[-1]
    for i in range(first):
        out[i]["travel"], out[i]["place_z"] = -(first - i) * CRUISE_STEP_M, None
    for i in range(last + 1, len(out)):
        out[i]["travel"], out[i]["place_z"] = out[last]["travel"] + (i - last) * CRUISE_STEP_M, None
    return out


def render_clip(plan: list[dict], seed: int, size: Size = (320, 180),
                schema: Schema | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield (frame, image) for every frame of a plan; one camera and scene for the whole clip."""
    for f in clip_frames(plan, seed, size, schema):
        img = render_params(f["params"], seed, size, travel=f["travel"], place_z=f["place_z"])
        yield f, img  # type: ignore[misc]

"""Event clips for retrieval, their events, and long drives made of several clips.

An event clip drives through one place like ``clip_plan``'s clips, but shows a contiguous run of
the place's stages (only the approach, approach to passing, ...), so that a clip caption's stages
say something the place alone does not. The place and stage attributes are found by their render
keys (``feature``, ``distance``), so no attribute or value name is spelled here.

A long drive is several clips played one after another: a list of frames with their time in the
drive, each clip's offset, and each event's time window, enough to evaluate moment retrieval
without writing a video.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from core.schema import Schema, default_schema
from core.synth.clips import STAGE_ORDER, attribute_with, plan_frames, value_with


def place_stages(schema: Schema, place: str) -> list[str]:
    """The stage values a place can be shown at, in the order a drive meets them."""
    place_attr, stage_attr = attribute_with(schema, "feature"), attribute_with(schema, "distance")
    stages = [v for v in schema.allowed(stage_attr.name, {place_attr.name: place})
              if stage_attr.value(v).render.get("distance") in STAGE_ORDER]
    return sorted(stages, key=lambda v: STAGE_ORDER.index(stage_attr.value(v).render["distance"]))


def event_plan(schema: Schema | None = None, rng: random.Random | None = None, fps: float = 2.0,
               frames: int = 6, place: str | None = None, stages: Sequence[str] | None = None,
               context: Mapping[str, str] | None = None) -> list[dict]:
    """Per-frame plan (``clip_plan``'s fields) of one clip: a driving frame, the place at ``stages``
    (a contiguous run of its stages, drawn when None), a driving frame. A place without stages (the
    plain road) gives a clip of driving only. ``context`` fixes other attributes' values."""
    schema = schema or default_schema()
    rng = rng or random.Random(0)
    place_attr, stage_attr = attribute_with(schema, "feature"), attribute_with(schema, "distance")
    plain_place = value_with(place_attr, "feature", "none")
    driving = value_with(stage_attr, "distance", "none")
    place = place or rng.choice(place_attr.value_names)
    fixed = schema.sample(rng, {**(context or {}), place_attr.name: place})
    n = max(3, int(frames))
    allowed = place_stages(schema, place)
    if place == plain_place or not allowed:
        segments = [(plain_place, driving, n)]
    else:
        if stages is None:
            i = rng.randrange(len(allowed))
            stages = allowed[i:rng.randrange(i, len(allowed)) + 1]
        stages = list(stages)
        if not stages or any(s not in allowed for s in stages):
            raise ValueError(f"stages {stages} are not a run of {place!r}'s stages {allowed}")
        mid = n - 2
        if mid < len(stages):
            raise ValueError(f"{n} frames cannot show {len(stages)} stages between two driving frames")
        per, extra = divmod(mid, len(stages))
        segments = [(plain_place, driving, 1)]
        segments += [(place, st, per + (1 if k < extra else 0)) for k, st in enumerate(stages)]
        segments.append((plain_place, driving, 1))
    return plan_frames(schema, segments, fixed, place, fps)


def clip_event(schema: Schema, frame_labels: Sequence[Mapping[str, str]], timestamps: Sequence[float],
               fps: float) -> dict:
    """What a clip shows, from its frames' labels (in time order).

    ``feature``: the place attribute's value shown (the plain road's value when none is); ``stages``: the stages
    it is shown at, in order of first appearance; ``context``: the other attributes' values (those
    that stay fixed through the clip; an attribute that changes is left out); ``window``: (start,
    end) seconds of the frames that show the place (each frame lasting 1/fps), the whole clip when
    none does.
    """
    if not frame_labels:
        raise ValueError("a clip without frames has no event")
    place_attr, stage_attr = attribute_with(schema, "feature"), attribute_with(schema, "distance")
    plain_place = value_with(place_attr, "feature", "none")
    shown = [i for i, lab in enumerate(frame_labels) if lab[place_attr.name] != plain_place]
    places = {frame_labels[i][place_attr.name] for i in shown}
    if len(places) > 1:
        raise ValueError(f"a clip shows several places {sorted(places)}; an event clip shows one")
    step = 1.0 / fps
    idx = shown or list(range(len(frame_labels)))
    context = {a.name: frame_labels[0][a.name] for a in schema
               if a.name not in (place_attr.name, stage_attr.name)
               and all(lab[a.name] == frame_labels[0][a.name] for lab in frame_labels)}
    return {
        "feature": next(iter(places)) if places else plain_place,
        "stages": list(dict.fromkeys(frame_labels[i][stage_attr.name] for i in idx)),
        "context": context,
        "window": (float(timestamps[idx[0]]), float(timestamps[idx[-1]]) + step),
    }


def join_drive(clips: Sequence[tuple[str, int, Sequence[float], tuple[float, float]]], fps: float) -> dict:
    """One long drive from clips played back to back.

    ``clips``: (clip_id, frames, timestamps, event window) per clip, in drive order. Returns
    ``frames`` (clip_id, frame_index, t: seconds into the drive), ``offsets`` (clip_id -> seconds
    at which the clip starts) and ``events`` (clip_id, start_s, end_s in drive time); duration_s.
    """
    step = 1.0 / fps
    t0 = 0.0
    frames, offsets, events = [], {}, []
    for clip_id, n, times, (start, end) in clips:
        if clip_id in offsets:
            raise ValueError(f"clip {clip_id!r} appears twice in one drive")
        offsets[clip_id] = t0
        frames += [{"clip_id": clip_id, "frame_index": i, "t": round(t0 + float(times[i]), 4)} for i in range(n)]
        events.append({"clip_id": clip_id, "start_s": round(t0 + start, 4), "end_s": round(t0 + end, 4)})
        t0 = round(t0 + float(times[n - 1]) + step, 4)
    return {"frames": frames, "offsets": offsets, "events": events, "duration_s": t0}


__all__ = ["clip_event", "event_plan", "join_drive", "place_stages"]

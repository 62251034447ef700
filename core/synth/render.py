"""Compose one synthetic dash-cam frame from render parameters.

The renderer reads only the schema's ``render`` parameters (feature, arms, side, direction,
distance, road, sky, ground, light), never attribute or value names, so a schema can rename its
values freely. Everything is deterministic in (params, seed, travel).

Pipeline: sky -> horizon scenery -> ground (road, markings, the place's flat parts) -> one numpy
pass for light, shadows, wet sheen and fog on the ground -> upright objects far to near, already
lit and fogged -> halos, rain/snow, noise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.schema import Schema, default_schema
from core.synth.atmosphere import Look, finish, ground_pass, make_look, paint_sky
from core.synth.camera import Camera
from core.synth.canvas import Canvas
from core.synth.features import Place, make_place
from core.synth.randomize import jitter_camera, randomize_frame, stream
from core.synth.road import Road, build_road, paint_far, paint_ground, shadow_offset
from core.synth.scenery import populate

Size = tuple[int, int]
# Bumped whenever the same (params, seed) renders differently, so cached datasets are re-rendered.
RENDERER_VERSION = 1


@dataclass
class Setup:
    cam: Camera
    look: Look
    road: Road
    rnd: random.Random
    place: Place | None


def _streams(seed: int) -> tuple[random.Random, ...]:
    """Independent random streams: layout, place geometry, roadside, stage progress."""
    base = (int(seed) & 0xFFFFFFFF) * 7919
    return tuple(random.Random(base + k) for k in range(1, 5))


def _setup(params: Mapping[str, object], seed: int, size: Size,
           randomize: bool = False) -> tuple[Setup, tuple[random.Random, ...]]:
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16:
        raise ValueError(f"size {size} too small; need at least 16x16")
    streams = _streams(seed)
    rnd, frnd = streams[0], streams[1]
    cam = Camera(w, h, f=w * rnd.uniform(0.76, 0.84), h=rnd.uniform(1.55, 2.2),
                 cx=w * (0.5 + rnd.uniform(-0.04, 0.04)), yh=h * rnd.uniform(0.40, 0.47))
    if randomize:  # its own stream: the layout drawn next is the same as without it
        jitter_camera(cam, stream(seed))
    look = make_look(dict(params), rnd)
    road, u_cam, curve = build_road(dict(params), rnd)
    if params.get("feature") == "gore":
        # Drivers pass a gore in the lane next to it (the exit or the joining lane's neighbour).
        u_cam += road.move_ego(-1 if params.get("side") == "left" else 1)
    cam.u_cam, cam.curve = u_cam, curve
    place = make_place(dict(params), road, cam, frnd)
    return Setup(cam, look, road, rnd, place), streams


def place_distance(params: Mapping[str, object], seed: int, size: Size = (320, 180),
                   progress: float | None = None) -> float | None:
    """Distance (m) of the place's near edge for a stage progress in [0, 1]; None without a place."""
    st, streams = _setup(params, seed, size)
    if st.place is None:
        return None
    t = streams[3].random() if progress is None else min(1.0, max(0.0, float(progress)))
    return st.place.anchor(t)


def render_params(
    params: Mapping[str, object],
    seed: int,
    size: Size = (320, 180),
    return_mask: bool = False,
    progress: float | None = None,
    travel: float = 0.0,
    place_z: float | None = None,
    randomize: bool = False,
    return_objects: bool = False,
) -> np.ndarray | tuple:
    """Render from merged render parameters.

    ``progress`` (0..1) sets where in its stage the place is (random from the seed when None);
    ``place_z`` overrides it with an explicit distance. ``travel`` moves the camera along the
    road (metres) without changing the scene, which is how clips move smoothly. ``randomize``
    applies domain randomization (core.synth.randomize); off, the output is unchanged.
    ``return_objects`` appends the frame's object annotations (core.synth.objects.annotate: class,
    centre, box in pixels, nearest first); the pixels are the same with or without it. With
    ``randomize`` they do not include its distractors nor follow its lens distortion.
    """
    st, streams = _setup(params, seed, size, randomize)
    cam, look, road, rnd, place = st.cam, st.look, st.road, st.rnd, st.place
    cv = Canvas(cam, look, rnd, dict(params), want_mask=return_mask, want_objects=return_objects)
    shadow_offset(cv)  # fix the sun before anything draws from the layout stream
    if place is not None:
        if place_z is None:
            t = streams[3].random() if progress is None else min(1.0, max(0.0, float(progress)))
            place_z = place.anchor(t)
        place.place(float(place_z), cv)
    img = paint_sky(cam.width, cam.height, cam.yh, look, rnd)
    cv.start(img)
    paint_far(cv, road)
    paint_ground(cv, road, travel)
    if place is not None:
        place.ground(cv, travel)
    srnd = streams[2]
    populate(cv, road, srnd, travel, busy=params.get("feature", "none") != "none")
    if place is not None:
        place.items(cv)
    img = ground_pass(img, cv)
    cv.start(img)
    cv.flush()
    frame_rng = random.Random((int(seed) & 0xFFFFFFFF) * 1_000_003 + int(round(travel * 100)))
    out = finish(img, cv, frame_rng)
    if randomize:
        out = randomize_frame(out, cam, stream(seed, 0.0), stream(seed, travel, per_frame=True))
    extra = (cv.objects(),) if return_objects else ()
    if return_mask:
        mask = np.asarray(cv.mask) > 127 if cv.mask is not None else np.zeros(out.shape[:2], bool)
        return (out, mask, *extra)
    return (out, *extra) if extra else out


def render_scene(
    labels: Mapping[str, str],
    seed: int,
    size: Size = (320, 180),
    schema: Schema | None = None,
    return_mask: bool = False,
    progress: float | None = None,
    travel: float = 0.0,
    randomize: bool = False,
    return_objects: bool = False,
) -> np.ndarray | tuple:
    """Render a frame for a label set: HxWx3 uint8 RGB (``size`` is (width, height)).

    With ``return_mask`` also an HxW bool mask of the place's own pixels (empty without a place);
    with ``return_objects`` also (last) the object annotations (see ``render_params``).
    """
    schema = schema or default_schema()
    schema.check(labels)
    return render_params(schema.render_params(labels), seed, size, return_mask, progress, travel,
                         randomize=randomize, return_objects=return_objects)

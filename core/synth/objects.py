"""Object annotations: the important objects a frame draws, with their class, centre and box.

The renderer's object classes are spelled here once (like the schema's ``render`` parameters, they
are the renderer's own words); the schema's ``questions.objects.classes`` phrases each of them for
the question bank. Drawing code tags an upright item with its class (``Canvas.item(..., kind=)``);
when annotations are asked for, the canvas paints every item into an id layer as well, far to near
like the image, so what a nearer item hides is not counted. An object's box is the box of its
visible pixels, its centre the box's centre (DriveLM's convention), in image pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_text

CONE = "cone"
BARREL = "barrel"
SIGN = "sign"  # road signs, the arrow board of a work zone
GATE = "gate"  # rail crossing gates
SIGNAL = "signal"  # traffic lights, rail crossing flashers, crossing beacons
VEHICLE = "vehicle"  # other cars (ahead, oncoming, parked, crossing)
PEDESTRIAN = "pedestrian"
CLASSES = (CONE, BARREL, SIGN, GATE, SIGNAL, VEHICLE, PEDESTRIAN)
MIN_PIXELS = 6  # visible pixels below which an object is too small or too hidden to annotate
OBJECTS_FILE = "objects.jsonl"  # beside a dataset's manifest: {path, size, objects} per frame
OBJECTS_KEY = "_objects"  # a rendered row's annotations until they are written (never in a manifest)


def annotate(layer: np.ndarray, kinds: list[tuple[str, float]], min_pixels: int = MIN_PIXELS) -> list[dict[str, Any]]:
    """Annotations from an id layer (0: no tagged object; i: the i-th tagged item of ``kinds``, as
    (class, distance)): nearest first, each ``{class, centre, box, distance, pixels}`` with the box
    (x0, y0, x1, y1) inclusive of its edge pixels and the centre its middle."""
    counts = np.bincount(layer.ravel(), minlength=len(kinds) + 1)
    out = []
    for i in np.nonzero(counts[1:] >= min_pixels)[0] + 1:
        ys, xs = np.nonzero(layer == i)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
        kind, dist = kinds[i - 1]
        out.append({"class": kind, "centre": [round((x0 + x1 + 1) / 2, 1), round((y0 + y1 + 1) / 2, 1)],
                    "box": [x0, y0, x1 + 1, y1 + 1], "distance": round(float(dist), 2), "pixels": int(counts[i])})
    out.sort(key=lambda o: (o["distance"], o["box"]))
    return out


def write_objects(root: str | Path, frames: Iterable[tuple[str, tuple[int, int], list[dict[str, Any]]]]) -> Path:
    """Write ``objects.jsonl`` (atomically) from (frame path, (width, height), annotations), sorted by path."""
    rows = sorted(({"path": p, "size": [int(size[0]), int(size[1])], "objects": objs} for p, size, objs in frames),
                  key=lambda r: r["path"])
    path = Path(root) / OBJECTS_FILE
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_objects(root: str | Path) -> dict[str, dict[str, Any]] | None:
    """A dataset's object annotations by frame path (``{size, objects}``), or None without the file."""
    from core.jsonl import read_jsonl

    path = Path(root) / OBJECTS_FILE
    if not path.is_file():
        return None
    rows, numbers = read_jsonl(path)
    out = {}
    for n, r in zip(numbers, rows, strict=True):
        if not isinstance(r.get("path"), str) or not isinstance(r.get("objects"), list) or len(r.get("size") or []) != 2:
            raise ValueError(f"{path} row {n}: needs 'path' (text), 'size' ([width, height]) and 'objects' (a list)")
        out[r["path"]] = {"size": r["size"], "objects": r["objects"]}
    return out


__all__ = ["BARREL", "CLASSES", "CONE", "GATE", "MIN_PIXELS", "OBJECTS_FILE", "OBJECTS_KEY", "PEDESTRIAN", "SIGN",
           "SIGNAL", "VEHICLE", "annotate", "read_objects", "write_objects"]

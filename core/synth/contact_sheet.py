"""Contact sheet of the synthetic world: one labelled tile per value of every attribute.

Rows: every place (at its middle allowed stage), every stage, road type, weather, surface and
lighting. Tiles vary one attribute from a fixed, seeded baseline scene, so the difference between
neighbours is the value shown. ``python -m core.synth.contact_sheet docs/synthetic-world.png``
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from core.atomic import atomic_path
from core.schema import Schema, default_schema
from core.synth.clips import attribute_with
from core.synth.render import render_scene

TILE = (320, 180)
LABEL_H = 20
HEADER_H = 24
COLS = 6
ORDER = ("feature", "distance", "road", "sky", "ground", "light")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _baseline(schema: Schema, seed: int) -> dict[str, str]:
    """A fixed, readable scene: a place seen up close, in daylight, clear weather on a dry road."""
    rng = random.Random(seed)
    place = attribute_with(schema, "feature")
    fixed = {}
    for key, want in (("sky", "sunny"), ("ground", "dry"), ("light", "day"), ("road", "urban")):
        attr = attribute_with(schema, key)
        fixed[attr.name] = next((v.name for v in attr.values if v.render.get(key) == want), attr.values[0].name)
    fixed[place.name] = next(v.name for v in place.values if v.render.get("feature") == "construction")
    stage = attribute_with(schema, "distance")
    fixed[stage.name] = next(v.name for v in stage.values if v.render.get("distance") == "near")
    return schema.sample(rng, fixed)


def _with(schema: Schema, base: dict[str, str], attr: str, value: str) -> dict[str, str]:
    """``base`` with one attribute changed, repairing the others the schema's rules tie to it."""
    labels = dict(base)
    labels[attr] = value
    stage = attribute_with(schema, "distance").name
    place = attribute_with(schema, "feature").name
    if schema.is_valid(labels) and not (attr == place and schema[place].value(value).render.get(
            "feature") == "intersection"):
        return labels
    other = stage if attr != stage else place
    allowed = schema.allowed(other, labels)
    prefer = {"near": 0, "far": 1, "at": 2, "none": 3}
    if schema[place].value(labels[place]).render.get("feature") == "intersection":
        prefer = {"far": 0, "near": 1, "at": 2, "none": 3}  # all arms and the junction sign in view
    attr_other = schema[other]
    if other == stage:
        allowed.sort(key=lambda v: prefer.get(str(attr_other.value(v).render.get("distance")), 9))
    else:  # a stage needs a place: prefer the baseline's kind of place, then any real place
        allowed.sort(key=lambda v: (v != base[place], attr_other.value(v).render.get("feature") == "none"))
    labels[other] = allowed[0]
    schema.check(labels)
    return labels


def contact_sheet(out_png: str | Path, schema: Schema | None = None, seed: int = 0) -> Path:
    schema = schema or default_schema()
    base = _baseline(schema, seed)
    sections = []
    for key in ORDER:
        attr = attribute_with(schema, key)
        tiles = [(attr.display_of(v), _with(schema, base, attr.name, v)) for v in attr.value_names]
        if key == "feature":  # say which stage each place is shown at
            stage = attribute_with(schema, "distance")
            tiles = [(f"{t} ({stage.display_of(lab[stage.name]).lower()})", lab) for t, lab in tiles]
        sections.append((attr.display, tiles))
    w, h = TILE
    rows = sum((len(t) + COLS - 1) // COLS for _, t in sections)
    sheet = Image.new("RGB", (COLS * w, rows * (h + LABEL_H) + len(sections) * HEADER_H), (250, 250, 250))
    d = ImageDraw.Draw(sheet)
    big, small = _font(18), _font(14)
    y = 0
    for si, (title, tiles) in enumerate(sections):
        d.rectangle((0, y, sheet.width, y + HEADER_H - 1), fill=(40, 44, 52))
        d.text((8, y + 2), title, fill=(255, 255, 255), font=big)
        y += HEADER_H
        for i, (label, labels) in enumerate(tiles):
            x = (i % COLS) * w
            yy = y + (i // COLS) * (h + LABEL_H)
            img = render_scene(labels, seed * 1000 + si * 50 + i + 11, TILE, schema)
            sheet.paste(Image.fromarray(img), (x, yy))
            d.text((x + 6, yy + h + 2), label, fill=(20, 20, 20), font=small)
        y += ((len(tiles) + COLS - 1) // COLS) * (h + LABEL_H)
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="docs/synthetic-world.png")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(contact_sheet(args.out, seed=args.seed))


if __name__ == "__main__":
    main()

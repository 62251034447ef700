"""Synthetic driving-scene world: renders dash-cam frames and clips for any schema label set.

The renderer reads only the schema's ``render`` parameters; see docs/synthetic-world.md.
"""

from core.synth.clips import clip_plan, render_clip
from core.synth.dataset import ensure_synth_dataset, write_synth_dataset
from core.synth.render import render_params, render_scene

__all__ = ["clip_plan", "ensure_synth_dataset", "render_clip", "render_params", "render_scene", "write_synth_dataset"]

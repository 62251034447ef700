"""The recipe of the bundled model, ``scenescope-tiny``: every number that defines its training run.

A plain dataclass without torch: ``scenescope train-default`` builds one command-line option per
field from it (``core.cli``) before anything heavy is imported; ``core.train.default`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DefaultRecipe:
    """The defaults are the bundled model's recipe; its model card records the values it was trained with."""

    scenes: int = 12000
    clips: int = 150
    data_seed: int = 7
    epochs: int = 20
    lr: float = 5e-4
    weight_decay: float = 0.1
    batch_size: int = 128
    seed: int = 0
    attribute_loss: float = 1.0  # weight of the auxiliary per-attribute loss (AttributeHeads)
    val_index_frames: int = 3000  # per-epoch k-NN check: val split voted by this many train frames
    # Model input (height, width), multiples of the 16-pixel patch. The registered config's 112x192
    # sees a junction's side arms as a few pixels; larger inputs cost about their token count more.
    image_size: tuple[int, int] = (112, 192)
    # Then a second cosine cycle (warm restart, fresh optimizer, next seed) in which the attribute
    # heads weigh each attribute's loss by these (schema order: place, stage, road type first), so
    # the attributes k-NN votes worst get more of the embedding. 0 epochs skips it.
    refine_epochs: int = 8
    refine_lr: float = 2.5e-4
    refine_head_weights: tuple[float, ...] = (3.0, 2.0, 2.0, 1.0, 1.0, 1.0)
    # Then a cycle at a larger input (``core.train.regrid``: positional embeddings interpolated to
    # the finer patch grid) with the refine stage's loss, so the small cues that tell 3-, 4- and
    # 5-way junctions apart get more pixels. 0 epochs skips it.
    grow_epochs: int = 0
    grow_image_size: tuple[int, int] = (176, 320)
    grow_lr: float = 2.5e-4
    grow_head_weights: tuple[float, ...] = (5.0, 2.0, 2.0, 1.0, 1.0, 1.0)
    # Then self-distillation for token-pruned encoding (core.train.distill); 0 epochs skips it.
    distill_epochs: int = 8
    distill_lr: float = 3e-4

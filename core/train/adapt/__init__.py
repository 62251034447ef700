"""Domain adaptation of a model to unlabelled footage (issue 20; DriVLM-style).

The image encoder learns the target footage's look without target labels. Each step's loss is

- the labelled source task on the synthetic world's frames: ``core.train.loop``'s multi-positive
  contrastive loss on subset captions plus its attribute heads' loss (the from-scratch recipe's);
- domain-adversarial alignment at two granularities (DANN): a domain classifier on the pooled
  image embedding and a per-token one on the patch tokens, each behind a gradient-reversal layer
  (``core.train.grl``), so the encoder learns features neither can tell apart;
- distillation: the adapted model's source-frame embeddings stay close (cosine) to the frozen
  source model's, so the alignment does not wander away from what the index and prompts expect.

Source frames get augmentations matching the renderer's sensor model and beyond (photometric
jitter, blur, sensor noise, JPEG artefacts). The run is resumable at epoch boundaries (all
randomness of an epoch comes from (seed, epoch)), and writes a ``file:`` model folder with its
own identity, a model card and ``adapt.json`` (a before/after table on the target footage:
familiarity and the vote distribution against an index of labelled frames).
"""

from core.train.adapt.augment import SensorAugment, _normalization
from core.train.adapt.data import preprocess_all, read_frame_labels, target_frames, target_images
from core.train.adapt.loop import adapt_model
from core.train.adapt.losses import (
    dann_lambda,
    domain_probe_accuracy,
    embed,
    encode_with_tokens,
    source_task_loss,
)
from core.train.adapt.options import OPTION_HELP, AdaptOptions
from core.train.adapt.report import (
    AdaptResult,
    before_after_rows,
    label_accuracy,
    model_card,
    reference_store,
    target_report,
)
from core.train.adapt.run import adapt

__all__ = [
    "OPTION_HELP", "AdaptOptions", "AdaptResult", "SensorAugment", "_normalization", "adapt", "adapt_model",
    "before_after_rows", "dann_lambda", "domain_probe_accuracy", "embed", "encode_with_tokens", "label_accuracy",
    "model_card", "preprocess_all", "read_frame_labels", "reference_store", "source_task_loss", "target_frames",
    "target_images", "target_report",
]

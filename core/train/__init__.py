"""Contrastive training of CLIP models: the bundled model from scratch, and fine-tuning."""

from core.train.checkpoint import save_model_dir
from core.train.data import epoch_captions, epoch_subset_captions, label_codes, load_pixels
from core.train.loop import StepInfo, TrainConfig, train_contrastive

__all__ = ["StepInfo", "TrainConfig", "epoch_captions", "epoch_subset_captions", "label_codes", "load_pixels", "save_model_dir", "train_contrastive"]

"""The small VLM's training data: QA rows read from ``qa.jsonl``, turned into ``Example``s, and the
frozen tower's features computed once (``FeatureCache``). Used by ``train_vlm`` (the stages),
``train_loop`` (the epoch loop), ``train_mc`` (the ranking loss) and ``evaluate`` (frame rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.jsonl import read_jsonl
from core.schema import Schema
from core.tokens.pruned import keep_indices
from core.tokens.select import random_scores
from core.vqa.drivelm import split_options
from core.vqa.questions import CLIP_FRAME, QA_FILE

if TYPE_CHECKING:
    from core.vqa.vlm import VLM


@dataclass(frozen=True)
class Example:
    frame: int  # row of the feature cache
    question: str | None  # None: a caption (stage 1)
    answer: str
    options: tuple[str, ...] = ()  # what multiple choice / yes-no scores (core.vqa.train_mc); () for others
    correct: int = -1  # index of ``answer`` in ``options``


def read_qa(root: Path) -> list[dict[str, Any]] | None:
    path = root / QA_FILE
    if not path.is_file():
        return None
    rows, numbers = read_jsonl(path)
    for n, row in zip(numbers, rows, strict=True):
        for key in ("scene", "frame", "question", "answer"):
            if key not in row:
                raise ValueError(f"{path} row {n}: missing {key!r}")
    return rows


def qa_pair(row: dict[str, Any], schema: Schema) -> tuple[str, str]:
    """(question, target text) of a QA row: a multiple-choice row becomes its stem (options and the
    lead-in removed) and the correct option's text."""
    q, a = str(row["question"]).strip(), str(row["answer"]).strip()
    stem, inline = split_options(q)
    opts = list(row.get("options") or inline)
    if opts and len(a) == 1 and a.isalpha() and 0 <= ord(a.upper()) - ord("A") < len(opts):
        q, a = (stem if inline else q), opts[ord(a.upper()) - ord("A")]
    lead = schema.qa.choose.strip()
    if lead and q.endswith(lead):
        q = q[: -len(lead)].strip()
    return q, a


def frame_rows(frames: Any) -> dict[tuple[str, str], int]:
    """(clip id, qa ``frame``) -> manifest row: a one-frame clip's own frame index, else the frame's
    position in time order; ``CLIP_FRAME`` names the clip's middle frame."""
    out: dict[tuple[str, str], int] = {}
    by_clip: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(frames.to_dict("records")):
        fi = r.get("frame_index")
        fi = 0 if fi is None or (isinstance(fi, float) and np.isnan(fi)) else int(fi)
        by_clip.setdefault(str(r["clip_id"]), []).append((fi, i))
    for clip, items in by_clip.items():
        items.sort()
        if len(items) == 1:
            out[(clip, str(items[0][0]))] = items[0][1]
        for pos, (_, i) in enumerate(items):
            out.setdefault((clip, str(pos)), i)
        out[(clip, CLIP_FRAME)] = items[len(items) // 2][1]
    return out


class FeatureCache:
    """Patch tokens of the frames and word-token features of the questions (frozen tower)."""

    def __init__(self, vlm: VLM, images: Sequence[Path], batch_size: int = 32) -> None:
        from PIL import Image

        chunks = []
        for i in range(0, len(images), batch_size):
            pics = []
            for p in images[i : i + batch_size]:
                with Image.open(p) as im:
                    pics.append(im.convert("RGB"))
            chunks.append(vlm.patch_tokens(vlm.vision.preprocess_batch(pics)))
        self.patches = torch.cat(chunks) if chunks else torch.zeros(0)
        self.vlm = vlm
        self.text: dict[str, np.ndarray] = {}
        self.kept: dict[tuple[int, str, float], torch.Tensor] = {}  # selection is deterministic: once per pair

    def question(self, q: str) -> np.ndarray:
        if q not in self.text:
            self.text[q] = self.vlm.question_tokens(q)
        return self.text[q]

    def indices(self, batch: Sequence[Example], frames: torch.Tensor, keep_ratio: float, seed: int) -> torch.Tensor:
        """Kept patches per example: by its question, or a seeded random subset for a caption."""
        n = frames.shape[1] - self.vlm.lead
        if keep_ratio >= 1.0:
            return torch.arange(n).expand(len(batch), -1)
        rows = []
        for j, ex in enumerate(batch):
            if ex.question is None:
                rows.append(keep_indices(random_scores(n, seed + j)[None], keep_ratio)[0])
            else:
                key = (ex.frame, ex.question, keep_ratio)
                if key not in self.kept:
                    self.kept[key] = self.vlm.select(frames[j : j + 1], [ex.question], keep_ratio,
                                                     text=[self.question(ex.question)])[0]
                rows.append(self.kept[key])
        return torch.stack(rows)

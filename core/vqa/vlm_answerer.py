"""The VLM answerer: ``VLMAnswerer.answer(question, image or clip, options)`` -> ``core.vqa.answer.Answer``,
the same interface as the retrieval answerer, around a loaded :class:`core.vqa.vlm.VLM`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from core.vqa.vlm import VLM


class VLMAnswerer:
    """``answer(question, image or clip, options)`` -> :class:`core.vqa.answer.Answer`, like the
    retrieval answerer. A clip is answered from its middle sampled frame (the VLM sees one frame, as
    in training). Below ``threshold`` it says the schema's no-answer with the reason, never a
    confident made-up answer. ``last_kept`` holds the kept patch indices of the last answer (for
    the heatmap)."""

    name = "vlm"

    def __init__(self, vlm: VLM, *, threshold: float | None = None, keep_ratio: float | None = None,
                 schema: Any = None) -> None:
        from core.schema import default_schema
        from core.vqa.answer import DEFAULT_THRESHOLD

        self.vlm, self.keep_ratio = vlm, keep_ratio
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self.schema = schema or default_schema()
        self.last_kept: torch.Tensor | None = None

    def frame(self, path: str | Path) -> Any:
        """The frame answered about: the image itself, or a clip's middle sampled frame."""
        from core.images import open_image
        from core.video import VIDEO_SUFFIXES, sample_frames

        p = Path(path)
        if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES:
            frames = [f for _, f in sample_frames(p, fps=2.0, max_frames=32)]
            if not frames:
                raise ValueError(f"{p.name}: no frames to answer about")
            return frames[len(frames) // 2]
        return open_image(p)

    def answer(self, question: str, path: str | Path, options: Sequence[str] | None = None) -> Any:
        return self.answer_image(question, self.frame(path), options)

    def answer_image(self, question: str, image: Any, options: Sequence[str] | None = None) -> Any:
        """Answer about one PIL image."""
        return self.answer_tokens(question, self.patches(image), options)

    def patches(self, image: Any) -> torch.Tensor:
        """(1, N, D) patch tokens of a PIL image: embed once, then ``answer_tokens`` per question."""
        return self.vlm.patch_tokens(self.vlm.vision.preprocess_batch([image]))

    def answer_tokens(self, question: str, patches: torch.Tensor, options: Sequence[str] | None = None) -> Any:
        """Answer about an image whose patch tokens (``patches``) are already computed."""
        from core.vqa.answer import Answer, QuestionError, check_question, match_question
        from core.vqa.drivelm import split_options
        from core.vqa.question_objects import object_ids

        qa = self.schema.qa
        q = check_question(question)
        if options is None:
            stem, inline = split_options(q)
            q, options = (stem, inline) if inline else (q, None)
        if qa.choose.strip() and q.endswith(qa.choose.strip()):
            q = q[: -len(qa.choose.strip())].strip()
        opts = list(options or [])
        if options is not None and len(opts) < 2:
            raise QuestionError(f"a multiple-choice question needs at least 2 options; got {len(opts)}")
        no_option = next((i for i, o in enumerate(opts) if o.strip().lower() == qa.no_answer.lower()), None)
        intent, matched, why = match_question(q, self.schema)
        if intent is None:  # the VLM learnt only what the schema asks: say so rather than guess
            return Answer(qa.no_answer, 0.0, [], no_option, why, definite=False)
        live = [i for i in range(len(opts)) if i != no_option]
        # DriveLM's inline options end in the period that separates them ("A. Sunny. B. Rain."); the
        # VLM learnt short options without it and sentences with it, so VLM.option_scores scores each
        # both ways (the choice keeps the given text).
        scored = [opts[i][:-1] if opts[i].endswith(".") else opts[i] for i in live]
        text, conf, pick, kept = self.vlm.answer_patches(patches, q, scored or None, self.keep_ratio)
        self.last_kept = kept
        choice = None if pick is None else live[pick]
        text = text if choice is None else opts[choice]
        if conf < self.threshold or not text:
            why = f"confidence {conf:.2f} is below the threshold {self.threshold:.2f}" + (
                f" (leaning to {text!r})" if text else "")
            return Answer(qa.no_answer, conf, [], no_option, why, intent, matched, definite=False)
        if intent.kind == "objects" and choice is None and not object_ids(text):
            # A text about objects without their positions is not DriveLM's answer; the bundled VLM was
            # not trained on object questions and writes such texts with high likelihood.
            why = f"the answer gives no object positions (<c1,CAMERA,x,y>) (leaning to {text!r})"
            return Answer(qa.no_answer, conf, [], no_option, why, intent, matched, definite=False)
        return Answer(text, conf, [], choice, None, intent, matched)


__all__ = ["VLMAnswerer"]

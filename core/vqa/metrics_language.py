"""The DriveLM challenge's language metrics (tag 2), offline, by pycocoevalcap.

BLEU-1..4, ROUGE-L and CIDEr from the COCO caption code (the official evaluation wraps it through
``language_evaluation.CocoEvaluator``), computed here with ``pycocoevalcap`` itself on its
PTB-tokenised text; METEOR (reported by LaVida Drive) too, though the challenge's score does not use it.

Tokenisation: language metrics are computed on pycocoevalcap's PTB tokens (Stanford PTBTokenizer,
lower-cased, with punctuation tokens such as ``.``, ``,``, ``?``, ``:``, quotes and brackets
dropped). That differs from a ``transformers``/``tokenizers`` tokenizer (the VLM's BPE keeps case
and punctuation, splits words into sub-word pieces and has its own vocabulary): a model's tokens are
never used for scoring. The PTB tokenizer also splits DriveLM's object tags oddly,
``<c1,CAM_BACK,1088.3,497.5>`` -> ``< c1 cam_back ,1088.3,497.5 >``, so coordinates count as words
in BLEU/CIDEr exactly as in the official evaluation.

Java: the PTB tokenizer and METEOR run ``java`` subprocesses (Java 17 works); METEOR's start-up
(loading its paraphrase table) takes several seconds, so pass ``meteor=False`` when it is not needed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

LANGUAGE_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "meteor")


def _need_java() -> None:
    if shutil.which("java") is None:
        raise RuntimeError("language metrics need Java (pycocoevalcap's PTB tokenizer and METEOR): "
                           "java not found on PATH")


@contextlib.contextmanager
def _stderr_to(buffer: list[str]) -> Iterator[None]:
    """Send file descriptor 2 (java's progress lines) to a temporary file, kept in ``buffer``."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            buffer.append(tmp.read().decode("utf-8", "replace"))


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:300]


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenisation of each text (one java run)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _need_java()
    captions = {i: [{"caption": t}] for i, t in enumerate(texts)}
    err: list[str] = []
    try:
        with _stderr_to(err):
            out = PTBTokenizer().tokenize(captions)
    except OSError as e:
        # It writes its input beside its jar, inside the installed package.
        raise RuntimeError(f"pycocoevalcap's PTB tokenizer failed: {e}") from None
    if len(out) != len(texts):
        raise RuntimeError(f"pycocoevalcap's PTB tokenizer returned {len(out)} of {len(texts)} lines: "
                           f"{_first_line(''.join(err))}")
    return [out[i][0] for i in range(len(texts))]


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]], scorer: Any = None) -> float:
    """METEOR by pycocoevalcap: a ``Meteor`` given by the caller is used and left running (one
    java start-up for several scorings); else one is started and stopped here."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = scorer if scorer is not None else Meteor()
    try:
        return float(meteor.compute_score(gts, res)[0])
    except (ValueError, OSError) as e:
        if meteor.lock.locked():
            meteor.lock.release()
        meteor.meteor_p.kill()
        detail = _first_line(meteor.meteor_p.stderr.read().decode("utf-8", "replace")) or str(e)
        raise RuntimeError(f"METEOR (java) failed: {detail}") from None
    finally:
        if scorer is None:
            meteor.__del__()  # its own shutdown: closes stdin and ends java now, not at GC


def language_scores(
    answers: Sequence[str], references: Sequence[str | Sequence[str]], *, meteor: Any = True
) -> dict[str, float | None]:
    """BLEU-1..4, ROUGE-L, CIDEr(-D) and METEOR of answers against their references, by pycocoevalcap
    on PTB tokens, as the COCO caption evaluation computes them (corpus BLEU, mean ROUGE-L and CIDEr;
    CIDEr's document frequencies come from these references). Values on pycocoevalcap's scales
    (0..1; CIDEr 0..10). All ``None`` for no answers; METEOR ``None`` when ``meteor=False``, and
    computed by the given scorer when ``meteor`` is a running ``pycocoevalcap`` ``Meteor``.
    """
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    if not answers:
        return dict.fromkeys(LANGUAGE_KEYS)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    sizes = [len(r) for r in refs]
    if min(sizes) < 1:
        raise ValueError("every answer needs at least one reference")
    # Tokenised separately, as the COCO evaluation does (one java run each).
    flat = ptb_tokenize([t for r in refs for t in r])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    gts = {i: flat[starts[i]:starts[i + 1]] for i in range(len(refs))}
    res = {i: [t] for i, t in enumerate(ptb_tokenize(list(answers)))}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    out: dict[str, float | None] = {f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["rouge_l"] = float(rouge)
    out["cider"] = float(cider)
    if meteor is False or meteor is None:
        out["meteor"] = None
    else:
        out["meteor"] = _meteor(gts, res, None if meteor is True else meteor)
    return out


__all__ = ["LANGUAGE_KEYS", "language_scores", "ptb_tokenize"]

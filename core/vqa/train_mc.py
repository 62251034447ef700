"""A multiple-choice ranking loss for the VLM's stage 2 (``scenescope train-vqa --mc-loss WEIGHT``).

Multiple choice is answered by scoring every option with its summed log-likelihood after the
question and picking the best (``VLM.option_scores``); a yes/no question is the same choice between
the schema's two words. Next-token loss alone only raises the right option's likelihood; it never
lowers the wrong ones', so a model can learn the options' language well and still rank them by
their prior (bench/RESULTS.md 14c-14d: perception multiple choice 0.48 on val, 0.28 with shuffled
images). This loss trains what is scored: for every multiple-choice or yes/no example of a batch it
computes each option's summed log-likelihood (one batched forward, with gradients, over the
example's own visual prefix) and adds the cross-entropy over the options, target the right one,
weighted against the LM loss.

Clip questions (the bank's ``kind`` "clip": prediction and behavior) get no ranking loss, only the LM
loss: they are about a whole clip or its later frames while the VLM sees one frame, so their options
cannot be told apart from the image and the ranking loss learns a question-only preference there
(bench/RESULTS.md 14e: behavior 0.375 -> 0.125 on the held-out world, chance 0.25).

The options are the question bank's (``core.vqa.questions``: a row's ``options``, or the schema's
yes/no words), without the no-answer option, which the answerer never scores. Each option is scored
exactly as inference scores it: the log-sum of its likelihood without and with its closing period
(``VLM.option_scores``). Scoring only the form the bank spells was tried first and is wrong: the
loss then lowers a wrong option's likelihood by moving the mass at its end from "." to <eos>, which
the log-sum at inference adds back (600-question sample: planning 0.000, perception MC 0.306 against
the LM-only model's 0.688 / 0.407; bench/RESULTS.md 14e).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F  # noqa: N812

from core.vqa.drivelm import split_options
from core.vqa.questions import CLIP_KIND
from core.vqa.vlm import option_forms

if TYPE_CHECKING:
    from core.schema import Schema
    from core.vqa.train_data import Example
    from core.vqa.vlm import VLM

YES_NO = "yes_no"  # the question bank's type of a yes/no row (core.vqa.questions)


def choice_of(row: dict[str, Any], schema: Schema, answer: str) -> tuple[tuple[str, ...], int]:
    """(options, index of the right one) a QA row is scored by, or ((), -1) when it has none: a
    multiple-choice row's options less the no-answer one, a yes/no row's (yes, no); ``answer`` is
    the row's target text (``train_data.qa_pair``). A clip row has none: see the module docstring."""
    if row.get("kind") == CLIP_KIND:
        return (), -1
    opts = list(row.get("options") or split_options(str(row["question"]))[1])
    if not opts and row.get("type") == YES_NO:
        opts = [schema.qa.yes, schema.qa.no]
    live = tuple(o for o in opts if o.strip().lower() != schema.qa.no_answer.lower())
    if len(live) < 2 or answer not in live:  # the no-answer is right: nothing the answerer can pick
        return (), -1
    return live, live.index(answer)


def option_logliks(vlm: VLM, prefix: torch.Tensor | None, prompts: Sequence[list[int]],
                   options: Sequence[Sequence[str]]) -> list[torch.Tensor]:
    """Per example j, (len(options[j]),) summed log-likelihoods of its options' tokens and <eos> after
    ``prefix[j]`` and ``prompts[j]``, with gradients: ``VLM.option_logliks`` for a batch of questions."""
    rep = [j for j, opts in enumerate(options) for _ in opts]
    targets = [vlm.target_ids(o) for opts in options for o in opts]
    x, mask, y = vlm.sequences(None if prefix is None else prefix[rep], [prompts[j] for j in rep], targets)
    logits = vlm.lm(inputs_embeds=x, attention_mask=mask).logits[:, :-1].float()
    y = y[:, 1:]
    picked = torch.gather(logits, 2, y.clamp_min(0)[..., None])[..., 0] - torch.logsumexp(logits, -1)
    return list((picked * (y != -100)).sum(1).split([len(o) for o in options]))


def option_scores(vlm: VLM, prefix: torch.Tensor | None, prompts: Sequence[list[int]],
                  options: Sequence[Sequence[str]]) -> list[torch.Tensor]:
    """``option_logliks`` of each option without and with its closing period, log-summed: what
    ``VLM.option_scores`` computes at inference, for a batch of questions and with gradients."""
    both = option_logliks(vlm, prefix, prompts, [option_forms(opts) for opts in options])
    return [torch.logaddexp(s[: len(o)], s[len(o) :]) for s, o in zip(both, options, strict=True)]


def mc_loss(vlm: VLM, prefix: torch.Tensor | None, batch: Sequence[Example]) -> torch.Tensor:
    """Mean cross-entropy over the options of the batch's examples that have them (0 when none do);
    ``prefix`` is the batch's visual prefix (B, P, hidden) or None."""
    rows = [j for j, ex in enumerate(batch) if len(ex.options) >= 2]
    if not rows:
        return torch.zeros((), device=vlm.device)
    scores = option_scores(vlm, None if prefix is None else prefix[rows],
                            [vlm.prompt_ids(batch[j].question) for j in rows], [batch[j].options for j in rows])
    return torch.stack([F.cross_entropy(s[None], torch.tensor([batch[j].correct], device=s.device))
                        for s, j in zip(scores, rows, strict=True)]).mean()


__all__ = ["choice_of", "mc_loss", "option_logliks", "option_scores"]

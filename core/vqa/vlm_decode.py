"""Lean inference for the VLM's small causal LM (``core.vqa.vlm``): greedy decoding, and multiple-choice
scoring from one pass over the prompt.

Why not ``transformers``' ``generate`` for answering: at this LM's size (2 layers, width 96) one forward
step is ~100 tiny tensor operations, so time goes to per-call bookkeeping, not arithmetic. ``generate``
adds about one more forward's worth per call (generation config, logits processors, stopping
criteria, cache and mask set-up; 3.7 ms CPU against 4.5 ms for the prompt's forward, bench/RESULTS.md
14f), a cost that does not depend on the number of visual tokens and so hides what token selection
saves. ``greedy`` is the same algorithm (argmax of the float32 last-position logits, the KV cache fed
one token at a time, stop at <eos>) calling the model's forward directly; ``generate`` stays the
reference (``VLM.generate_ids(..., hf=True)``) and tests/test_vlm.py checks token-for-token equality.

Multiple choice used to run every option (twice: with and without its period) as its own full
sequence, visual prefix included; ``option_logliks`` runs the prefix and the question once, copies the
KV cache across the options and runs only the options' tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def greedy(lm: Any, x: torch.Tensor, max_new_tokens: int, eos: int) -> tuple[list[int], list[float]]:
    """Greedy token ids after the embeddings ``x`` (1, T, hidden), <eos> included when reached, and
    each one's log-probability (the log-softmax of the logits it was picked from)."""
    out = lm(inputs_embeds=x, use_cache=True, logits_to_keep=1)
    ids: list[int] = []
    logps: list[float] = []
    for step in range(max_new_tokens):
        logits = out.logits[0, -1].float()  # what generate's greedy step argmaxes (no logits processors)
        t = int(torch.argmax(logits))
        ids.append(t)
        logps.append(float(torch.log_softmax(logits, -1)[t]))
        if t == eos or step == max_new_tokens - 1:
            break
        out = lm(input_ids=torch.tensor([[t]], device=x.device), past_key_values=out.past_key_values,
                 use_cache=True)
    return ids, logps


def option_logliks(lm: Any, x: torch.Tensor, targets: Sequence[list[int]], pad: int) -> np.ndarray:
    """Summed log-likelihood of each target (token ids, its <eos> included) after the embeddings ``x``
    (1, T, hidden): one forward over ``x`` whose last logits score every target's first token, then
    one batched forward of the targets' other tokens on copies of its KV cache. The targets are right
    padded, and padding after a target's last token cannot reach it under the causal mask."""
    out = lm(inputs_embeds=x, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[0, -1].float(), -1)
    ll = np.array([float(first[t[0]]) for t in targets])
    width = max(len(t) for t in targets) - 1
    if width <= 0:
        return ll
    cache = out.past_key_values
    cache.batch_repeat_interleave(len(targets))
    rows = [[*t, *[pad] * (width + 1 - len(t))] for t in targets]
    ids = torch.tensor(rows, device=x.device)  # (B, width + 1): position j predicts token j + 1
    valid = torch.tensor([[j < len(t) - 1 for j in range(width)] for t in targets], device=x.device)
    logp = torch.log_softmax(lm(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True).logits.float(), -1)
    picked = torch.gather(logp, 2, ids[:, 1:, None])[..., 0]
    return ll + (picked * valid).sum(1).double().cpu().numpy()


__all__ = ["greedy", "option_logliks"]

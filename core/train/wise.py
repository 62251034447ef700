"""WiSE-FT (Wortsman et al.): blend the fine-tuned weights with the start weights, the blend
chosen by a score (the val split's k-NN F1 in fine-tuning)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def interpolate(theta0: dict[str, torch.Tensor], theta1: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) * theta0 + alpha * theta1 over floating tensors; others come from theta1."""
    return {k: ((1 - alpha) * theta0[k].float() + alpha * v.float()).to(v.dtype)
            if v.is_floating_point() and k in theta0 else v for k, v in theta1.items()}


def wise_ft(
    clip: torch.nn.Module, theta0: dict[str, torch.Tensor], alphas: Sequence[float],
    score: Callable[[torch.nn.Module], float], known: dict[float, float] | None = None,
) -> tuple[float, dict[float, float]]:
    """Pick the alpha with the best ``score`` and leave ``clip`` at it; ties go to larger alpha.

    ``known`` carries scores already measured (alpha 0 is the start model, 1 the fine-tuned one).
    """
    theta1 = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    scores = dict(known or {})
    for a in alphas:
        if a not in scores:
            clip.load_state_dict(interpolate(theta0, theta1, a))
            scores[a] = score(clip)
    best = max(alphas, key=lambda a: (scores[a], a))
    clip.load_state_dict(interpolate(theta0, theta1, best))
    return best, {a: scores[a] for a in alphas}

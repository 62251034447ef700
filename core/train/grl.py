"""Gradient reversal (Ganin & Lempitsky, DANN) and the small domain classifiers behind it.

The reversal layer is the identity going forward and multiplies the gradient by ``-lambda``
going back: the domain classifier after it learns to tell source from target frames, while the
encoder before it receives the opposite push and learns features the classifier cannot separate.
"""

from __future__ import annotations

import torch


class GradReverse(torch.autograd.Function):
    """Identity forward; gradient negated and scaled by ``lam`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:  # noqa: ANN001
        ctx.lam = float(lam)
        return x.view_as(x)  # a view, so autograd records this node (returning x itself would skip it)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    return GradReverse.apply(x, lam)


class DomainClassifier(torch.nn.Module):
    """A two-layer MLP giving one logit per input row (target domain = 1).

    Applied to (B, D) pooled embeddings or to (B, T, D) patch tokens; for tokens every token is
    classified on its own (a per-token domain discriminator: the local look, textures and noise,
    rather than the scene's gist), and :meth:`loss` averages over tokens.
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float()).squeeze(-1)

    def loss(self, x: torch.Tensor, domain: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(binary cross-entropy, accuracy) of the classifier on ``x`` seen through the reversal
        layer; ``domain`` is (B,) 0 for source rows, 1 for target rows."""
        logits = self(grad_reverse(x, lam))
        target = domain.float().to(logits.device)
        if logits.ndim == 2:  # tokens: every token carries its frame's domain
            target = target[:, None].expand_as(logits)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        accuracy = ((logits.detach() > 0).float() == target).float().mean()
        return loss, accuracy

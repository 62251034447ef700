"""The small VLM (DriVLM's shape) with LaVida Drive's query-aware token selection.

    image -> registry vision tower (frozen) -> patch tokens (B, N, D)
          -> keep the ``keep_ratio`` share most similar to the question's text tokens
          -> recovery: the kept tokens cross-attend to all N patch tokens (nn.MultiheadAttention)
          -> 2-layer MLP projector -> visual prefix of the language model
    (``pooled``: the tower's pooled image embedding, already aligned with text, goes first as one
    more visual token through the same projector; it carries the whole image in one vector.)
    [visual prefix] <bos> question <sep> answer <eos>  -> a small causal LM (``LlamaConfig``)

Patch tokens and their scores come from ``core.tokens`` (``dense_forward``'s projected patch
features, ``text_features``'s word tokens, ``score_patches`` with the "max" rule, ``keep_indices``):
the tokens the VLM sees are the ones the Tokens page shows. Kept tokens stay in ascending patch
order, so at a keep ratio of 1 the selection path feeds exactly what the no-selection path feeds.

The tokenizer is a byte-level BPE trained by ``tokenizers`` on the QA corpus; the prompt layout uses
its special tokens only, so no English template is spelled here. Multiple choice scores each
option's text by its summed log-likelihood after the question and picks the best.

The answerer around it (the schema's questions, thresholds, clips) is ``core.vqa.vlm_answerer``.

A saved VLM is a folder: ``vlm.safetensors`` (recovery, projector, LM; the frozen tower is named,
not copied), ``vlm_config.json``, ``tokenizer.json`` and a model card, swapped in atomically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from core.model_names import ASSETS
from core.tokens.features import dense_forward, text_features
from core.tokens.pruned import keep_indices
from core.tokens.select import score_patches
from core.vqa.vlm_decode import greedy
from core.vqa.vlm_decode import option_logliks as cached_logliks

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from core.models import SceneModel

BUNDLED_VLM_NAME = "scenescope-vqa-tiny"
BUNDLED_VLM = ASSETS / BUNDLED_VLM_NAME  # trained by `make vqa-asset` (scenescope train-vqa), shipped in git
CONFIG_FILE = "vlm_config.json"
WEIGHTS_FILE = "vlm.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "MODEL_CARD.md"
MAX_BYTES = 50 * 1024 * 1024  # the size budget for a shipped VLM folder
QUESTION_CACHE = 4096  # questions whose word-token features are remembered
PAD, BOS, EOS, SEP, UNK = "<pad>", "<bos>", "<eos>", "<sep>", "<unk>"
SPECIALS = [PAD, BOS, EOS, SEP, UNK]


@dataclass
class VLMConfig:
    """Everything needed to rebuild a VLM; ``vision_identity`` pins the tower's weights."""

    vision_model: str
    vision_identity: str
    vision_dim: int
    vocab_size: int
    keep_ratio: float = 0.25
    rule: str = "max"  # score_patches rule: best cosine over the question's word tokens
    method: str = "raw"  # dense-feature method of core.tokens.features
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    recovery_heads: int = 4
    max_positions: int = 512
    max_new_tokens: int = 32
    # Prepend the tower's pooled image embedding (already aligned with text) as one visual token;
    # False for folders written before it existed (their config lacks the key).
    pooled: bool = False
    # LayerNorm the projector's output, its gain starting at the LM's embedding scale: unnormalised, the
    # trained recovery + projector sent patch tokens of norm ~3000 beside word embeddings of ~0.5.
    # False for folders written before it existed.
    prefix_norm: bool = False
    # Standardise the tower's tokens per dimension by the training frames' statistics (pooled and patch
    # tokens apart), and LayerNorm the projector's input: the tower's unit vectors share most of their
    # direction, so the image-to-image differences a tiny projector must read are small (14d).
    # False for folders written before it existed.
    feature_norm: bool = False
    # The pooled token alone standardised by the training frames' statistics, through its own input
    # layer (``pooled_in``) in place of the projector's first. bench/RESULTS.md 14i: the weather and road type
    # the LM reads worst (0.60 on multiple choice) while a linear probe of the projected pooled token
    # reads them at 0.90 / 0.87; its image-to-image spread is ~0.06 per dimension on a unit vector, so
    # Adam's steps barely move what differs between images. ``enable_pooled_norm`` converts a trained
    # VLM without changing its function (the statistics are folded into ``pooled_in``).
    pooled_norm: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VLMConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{CONFIG_FILE}: unknown keys {unknown}")
        return cls(**d)


# ---- tokenizer -------------------------------------------------------------------------------
def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Tokenizer:
    """Byte-level BPE trained on ``texts`` (questions, answers, captions) with our special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    return tok


# ---- the model -------------------------------------------------------------------------------
class VLM(nn.Module):
    """Recovery attention + projector + causal LM; the vision tower and tokenizer ride along."""

    def __init__(self, cfg: VLMConfig, vision: SceneModel, tokenizer: Tokenizer) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        self.cfg = cfg
        self.tokenizer = tokenizer
        object.__setattr__(self, "vision", vision)  # not a submodule: frozen, saved by name
        self.ids = {t: tokenizer.token_to_id(t) for t in SPECIALS}
        self.lead = 1 if cfg.pooled else 0  # leading non-patch tokens of ``patch_tokens`` (the pooled one)
        self._question_cache: dict[str, np.ndarray] = {}
        d, h = cfg.vision_dim, cfg.hidden
        self.recovery_norm = nn.LayerNorm(d)
        self.recovery = nn.MultiheadAttention(d, cfg.recovery_heads, batch_first=True)
        self.projector = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h))
        lm_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=h, intermediate_size=cfg.intermediate,
                             num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                             num_key_value_heads=cfg.heads, max_position_embeddings=cfg.max_positions,
                             bos_token_id=self.ids[BOS], eos_token_id=self.ids[EOS], pad_token_id=self.ids[PAD],
                             tie_word_embeddings=False)  # untied: safetensors refuses shared tensors
        self.lm = LlamaForCausalLM(lm_cfg)
        if cfg.prefix_norm:
            norm = nn.LayerNorm(h)
            nn.init.constant_(norm.weight, lm_cfg.initializer_range)  # a word embedding's per-dim scale at init
            self.projector.append(norm)
        if cfg.feature_norm:  # buffers: saved with the weights, set by ``fit_feature_norm`` before training
            self.register_buffer("feature_mean", torch.zeros(2, d))
            self.register_buffer("feature_std", torch.ones(2, d))
            self.input_norm = nn.LayerNorm(d)
        if cfg.pooled_norm:
            self._add_pooled_in()

    def _add_pooled_in(self) -> None:
        d, h = self.cfg.vision_dim, self.cfg.hidden
        self.register_buffer("pooled_mean", torch.zeros(d, device=self.device))
        self.register_buffer("pooled_std", torch.ones(d, device=self.device))
        self.pooled_in = nn.Linear(d, h, device=self.device)

    @torch.no_grad()
    def enable_pooled_norm(self, pooled: torch.Tensor) -> None:
        """Turn ``cfg.pooled_norm`` on, standardising by ``pooled`` (F, D), the training frames'
        pooled tokens: ``pooled_in`` = the projector's first layer with the statistics folded in,
        W' = W diag(std), b' = b + W mean, so the prefix is unchanged until training moves it."""
        if not self.cfg.pooled or self.cfg.feature_norm or self.cfg.pooled_norm:
            raise ValueError("pooled_norm needs the pooled token, not feature_norm, and is set once")
        self.cfg.pooled_norm = True
        self._add_pooled_in()
        first = self.projector[0]
        self.pooled_mean.copy_(pooled.mean(0))
        self.pooled_std.copy_(pooled.std(0).clamp_min(1e-6))
        self.pooled_in.weight.copy_(first.weight * self.pooled_std)
        self.pooled_in.bias.copy_(first.bias + first.weight @ self.pooled_mean)

    def fit_feature_norm(self, tokens: torch.Tensor) -> None:
        """Per-dimension mean and std of the pooled (row 0) and patch (row 1) tokens of ``tokens``
        (F, lead + N, D), the training frames' ``patch_tokens``."""
        lead, patches = tokens[:, : self.lead].reshape(-1, tokens.shape[-1]), tokens[:, self.lead :].reshape(-1, tokens.shape[-1])
        for row, part in enumerate((lead, patches)):
            if len(part):
                self.feature_mean[row] = part.mean(0).to(self.feature_mean)
                self.feature_std[row] = part.std(0).clamp_min(1e-6).to(self.feature_std)

    # -- vision side --
    @torch.no_grad()
    def patch_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, lead + N, D): the pooled image embedding (when ``cfg.pooled``) then the projected patch
        features of preprocessed ``pixels`` (the frozen tower); kept indices count patches only."""
        pooled, patches = dense_forward(self.vision, pixels, self.cfg.method)[:2]
        if self.lead:
            patches = torch.cat([pooled[:, None].to(patches.dtype), patches], dim=1)
        return patches.float().cpu()

    def question_tokens(self, question: str) -> np.ndarray:
        """(T, D) word-token features of the question in the tower's joint space; remembered per
        question (suggested and template questions come back often; the text tower is not free)."""
        if question not in self._question_cache:
            if len(self._question_cache) >= QUESTION_CACHE:
                self._question_cache.clear()
            self._question_cache[question] = text_features(self.vision, question)[1]
        return self._question_cache[question]

    def select(self, patches: torch.Tensor, questions: Sequence[str] | None,
               keep_ratio: float | None = None, text: Sequence[np.ndarray] | None = None) -> torch.Tensor:
        """(B, k) kept patch indices, ascending; ``questions`` None (or ratio 1) keeps all."""
        ratio = self.cfg.keep_ratio if keep_ratio is None else keep_ratio
        patches = patches[:, self.lead :]
        b, n = patches.shape[:2]
        if questions is None or ratio >= 1.0:
            return torch.arange(n).expand(b, -1)
        text = text if text is not None else [self.question_tokens(q) for q in questions]
        feats = patches.numpy()
        scores = np.stack([score_patches(f, t.mean(0) if len(t) else f.mean(0), t, self.cfg.rule)
                           for f, t in zip(feats, text, strict=True)])
        return keep_indices(scores, ratio)

    def visual_prefix(self, patches: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(B, lead + k, hidden): the pooled token (as is) and the kept patch tokens, recovered by
        attending to every patch, then projected."""
        tokens = patches.to(self.device)
        lead, patches = tokens[:, : self.lead], tokens[:, self.lead :]
        if self.cfg.feature_norm:
            lead = (lead - self.feature_mean[0]) / self.feature_std[0]
            patches = (patches - self.feature_mean[1]) / self.feature_std[1]
        kept = torch.gather(patches, 1, idx.to(self.device)[..., None].expand(-1, -1, patches.shape[-1]))
        q, kv = self.recovery_norm(kept), self.recovery_norm(patches)
        kept = kept + self.recovery(q, kv, kv, need_weights=False)[0]
        if self.cfg.pooled_norm:  # the pooled token through its own (standardised) first layer
            lead = self.projector[1:](self.pooled_in((lead - self.pooled_mean) / self.pooled_std))
            return torch.cat([lead, self.projector(kept)], dim=1)
        tokens = torch.cat([lead, kept], dim=1)
        return self.projector(self.input_norm(tokens) if self.cfg.feature_norm else tokens)

    # -- language side --
    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def prompt_ids(self, question: str | None) -> list[int]:
        """<bos> question <sep> (no question: <bos> <sep>, the caption prompt of stage 1)."""
        return [self.ids[BOS], *(self.encode(question) if question else []), self.ids[SEP]]

    def sequences(self, prefix: torch.Tensor | None, prompts: Sequence[list[int]],
                  targets: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded (inputs_embeds, attention_mask, labels) of [prefix] prompt target;
        labels are -100 except on the target tokens (the answer and its <eos>)."""
        emb = self.lm.get_input_embeddings()
        rows, labels = [], []
        for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
            ids = torch.tensor([*p, *t], device=self.device)
            parts = [emb(ids)]
            lab = [-100] * len(p) + list(t)
            if prefix is not None:
                parts.insert(0, prefix[i])
                lab = [-100] * prefix.shape[1] + lab
            rows.append(torch.cat(parts))
            labels.append(torch.tensor(lab, device=self.device))
        width = max(r.shape[0] for r in rows)
        x = torch.zeros(len(rows), width, rows[0].shape[-1], device=self.device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        y = torch.full((len(rows), width), -100, dtype=torch.long, device=self.device)
        for i, (r, lab) in enumerate(zip(rows, labels, strict=True)):
            x[i, : len(r)], mask[i, : len(r)], y[i, : len(r)] = r, 1, lab
        return x, mask, y

    def loss(self, prefix: torch.Tensor | None, prompts: Sequence[list[int]], targets: Sequence[list[int]]) -> torch.Tensor:
        """Mean next-token cross-entropy over the target tokens of the batch."""
        x, mask, y = self.sequences(prefix, prompts, targets)
        return self.lm(inputs_embeds=x, attention_mask=mask, labels=y).loss

    def target_ids(self, answer: str) -> list[int]:
        return [*self.encode(answer), self.ids[EOS]]

    # -- inference --
    @torch.no_grad()
    def prefix_of(self, pixels: torch.Tensor, question: str, keep_ratio: float | None = None,
                  select: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """((1, k, hidden) visual prefix, (1, k) kept indices) of one preprocessed image (1, 3, H, W).
        ``select=False`` is the no-selection path: every patch token, no question scoring."""
        return self.prefix_of_patches(self.patch_tokens(pixels), question, keep_ratio, select)

    @torch.no_grad()
    def prefix_of_patches(self, patches: torch.Tensor, question: str, keep_ratio: float | None = None,
                          select: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``prefix_of`` for patch tokens already computed (1, N, D): the image embedded once, asked often."""
        idx = self.select(patches, [question] if select else None, keep_ratio)
        return self.visual_prefix(patches, idx), idx

    @torch.no_grad()
    def prompt_embeds(self, prefix: torch.Tensor, question: str) -> torch.Tensor:
        ids = torch.tensor([self.prompt_ids(question)], device=self.device)
        return torch.cat([prefix, self.lm.get_input_embeddings()(ids)], dim=1)

    @torch.no_grad()
    def generate_ids(self, prefix: torch.Tensor, question: str, max_new_tokens: int | None = None,
                     hf: bool = False) -> tuple[list[int], float]:
        """Greedy answer token ids (without <eos>) and their mean log-probability (a confidence: exp of
        it is the geometric-mean token probability). ``vlm_decode.greedy`` calls the LM's forward with
        its KV cache; ``hf=True`` goes through ``generate(inputs_embeds=...)``, the same tokens with
        ~4 ms more bookkeeping per answer (the reference the tests compare with)."""
        x = self.prompt_embeds(prefix, question)
        if not hf:
            ids, logps = greedy(self.lm, x, max_new_tokens or self.cfg.max_new_tokens, self.ids[EOS])
            n = ids.index(self.ids[EOS]) if self.ids[EOS] in ids else len(ids)
            return ids[:n], float(np.mean(logps[: n + 1])) if logps else -math.inf
        out = self.lm.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long, device=x.device),
                               max_new_tokens=max_new_tokens or self.cfg.max_new_tokens, do_sample=False,
                               num_beams=1, eos_token_id=self.ids[EOS], pad_token_id=self.ids[PAD],
                               output_scores=True, return_dict_in_generate=True)
        ids = out.sequences[0].tolist()
        logps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, ids, strict=False)]
        n = ids.index(self.ids[EOS]) if self.ids[EOS] in ids else len(ids)
        return ids[:n], float(np.mean(logps[: n + 1])) if logps else -math.inf

    @torch.no_grad()
    def logits(self, prefix: torch.Tensor, question: str) -> torch.Tensor:
        """Next-token logits (vocab,) after the prompt: what generation's first step sees."""
        return self.lm(inputs_embeds=self.prompt_embeds(prefix, question)).logits[0, -1]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    @torch.no_grad()
    def option_logliks(self, prefix: torch.Tensor, question: str, options: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood of each option's tokens (and its <eos>) after the question: the prefix
        and the question run once, the options on copies of their KV cache (``vlm_decode``)."""
        targets = [self.target_ids(o) for o in options]
        return cached_logliks(self.lm, self.prompt_embeds(prefix, question), targets, self.ids[PAD])

    @torch.no_grad()
    def option_scores(self, prefix: torch.Tensor, question: str, options: Sequence[str]) -> np.ndarray:
        """Log-likelihood of each option with or without its closing period (log-sum of the two): the
        QA mix teaches sentence options with it ("Keep the lane and the speed.") and short ones without
        ("Sunny"), while DriveLM's inline options all end in one; scoring only the bare text made the
        best-learnt sentence the least likely one (planning below chance, bench/RESULTS.md 14d)."""
        both = self.option_logliks(prefix, question, option_forms(options))
        return np.logaddexp(both[: len(options)], both[len(options) :])

    def answer_pixels(self, pixels: torch.Tensor, question: str, options: Sequence[str] | None = None,
                      keep_ratio: float | None = None) -> tuple[str, float, int | None, torch.Tensor]:
        """(text, confidence, choice, kept indices) for one preprocessed image. With options: the
        option of highest likelihood (``option_scores``), its confidence the softmax share over the options."""
        return self.answer_patches(self.patch_tokens(pixels), question, options, keep_ratio)

    @torch.inference_mode()  # cheaper per tensor operation than no_grad; nothing here is trained
    def answer_patches(self, patches: torch.Tensor, question: str, options: Sequence[str] | None = None,
                       keep_ratio: float | None = None) -> tuple[str, float, int | None, torch.Tensor]:
        """``answer_pixels`` for patch tokens already computed (1, N, D)."""
        prefix, idx = self.prefix_of_patches(patches, question, keep_ratio)
        if options:
            ll = self.option_scores(prefix, question, options)
            share = np.exp(ll - ll.max())
            share /= share.sum()
            best = int(np.argmax(ll))
            return options[best], float(share[best]), best, idx[0]
        ids, mean_logp = self.generate_ids(prefix, question)
        return self.decode(ids), float(math.exp(mean_logp)), None, idx[0]



def option_forms(options: Sequence[str]) -> list[str]:
    """Each option without its closing period, then each with it: the two forms multiple choice
    scores and log-sums (``VLM.option_scores`` at inference, ``train_mc.option_scores`` in training)."""
    bare = [o[:-1] if o.endswith(".") else o for o in options]
    return [*bare, *(b + "." for b in bare)]


__all__ = [
    "BUNDLED_VLM", "BUNDLED_VLM_NAME", "CARD_FILE", "CONFIG_FILE", "MAX_BYTES", "SPECIALS", "TOKENIZER_FILE", "VLM", "VLMConfig",
    "WEIGHTS_FILE", "option_forms", "train_tokenizer",
]

"""Bag-of-words documents: word-count features for encoders and the softmax decoder over words.

A document is a vector x of (possibly smoothed) counts over a vocabulary of V words. The
decoder gives word probabilities pi(z) = softmax(logits(z)) and

    D = -log d(x|z) = -sum_w x_w log pi_w(z),

the negative log-probability of the document's words in their given order (the multinomial
without its coefficient, which does not depend on the model). The [Re] semantic-hashing tables
report D relative to the document's own word distribution p_hat = x / sum(x),

    D_rel = D - D_sat,   D_sat = -sum_w x_w log p_hat_w   (`saturated_distortion`),

the distortion of the best possible decoder for that document, a per-document constant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

FEATURES = ("counts", "frequencies")


def word_frequencies(counts: Tensor) -> Tensor:
    """Each document's counts divided by its length (empty documents stay zero)."""
    return counts / counts.sum(-1, keepdim=True).clamp_min(1e-12)


def corpus_smoothing(train_counts: Tensor) -> Tensor:
    """The [Re] smoothing vector: training-corpus word frequencies after adding 1/V to every
    word's total count; it sums to one and is added to every document (one pseudo-word)."""
    totals = train_counts.double().sum(0) + 1.0 / train_counts.shape[-1]
    return (totals / totals.sum()).to(train_counts.dtype)


def saturated_distortion(counts: Tensor) -> Tensor:
    """D_sat = -sum_w x_w log(x_w / sum(x)) per document (0 log 0 = 0): [N]."""
    x = counts.double()
    log_p_hat = torch.where(x > 0, x.clamp_min(1e-300).log() - x.sum(-1, keepdim=True).log(), 0.0)
    return -(x * log_p_hat).sum(-1).to(counts.dtype)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (the [Re] code's hidden activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


class BagOfWordsTrunk(nn.Module):
    """Word counts or frequencies, then `hidden` LeakyReLU layers (none: the features as they are)."""

    def __init__(self, vocabulary: int, features: str = "counts", hidden: Sequence[int] = ()):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        self.features = features
        hidden = tuple(hidden)
        self.out_features = hidden[-1] if hidden else vocabulary
        self.net = nn.Sequential(_mlp([vocabulary, *hidden]), nn.LeakyReLU()) if hidden else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        return self.net(word_frequencies(x) if self.features == "frequencies" else x)


class WordCounts(Distribution):
    """Word probabilities softmax(logits) over V words; log_prob(x) = sum_w x_w log pi_w."""

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.independent(constraints.nonnegative, 1)

    def __init__(self, logits: Tensor):
        self.log_probs = torch.log_softmax(logits, dim=-1)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    @property
    def probs(self) -> Tensor:
        return self.log_probs.exp()

    def log_prob(self, value: Tensor) -> Tensor:
        return (value * self.log_probs).sum(-1)


class BagOfWordsDecoder(nn.Module):
    """d(x|z): `hidden` LeakyReLU layers of z, then Linear(V) and a log-softmax over words."""

    def __init__(self, latent_dim: int, vocabulary: int, hidden: Sequence[int] = ()):
        super().__init__()
        self.event_shape = (vocabulary,)
        self.net = _mlp([latent_dim, *tuple(hidden), vocabulary])

    def forward(self, z: Tensor) -> WordCounts:
        return WordCounts(self.net(z).float())

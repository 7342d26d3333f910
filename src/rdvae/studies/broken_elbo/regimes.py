"""The four regimes of "Fixing a Broken ELBO" (section 4, fig. 4): autoencoder, syntactic encoder,
semantic encoder and autodecoder, told apart by a model's rate, distortion and mutual information
I_q(x; z) against an estimate H of the data entropy."""

from __future__ import annotations

AUTODECODER_INFORMATION = 1.0   # nats of I_q(x; z): below it z tells (almost) nothing about x
AUTOENCODER_DISTORTION = 0.075  # x H_hat: reconstructions (almost) exact
SEMANTIC_RATE = 0.25            # x H_hat: rates above this encode pixel-level detail
REGIMES = ("autoencoder", "syntactic encoder", "semantic encoder", "autodecoder")


def regime(rate: float, distortion: float, mutual_info: float | None, entropy: float) -> str:
    """The regime of a model at (R, D) with mutual information I_q(x; z), given an estimate H of
    the data entropy (nats):

        autodecoder        I_q < 1 nat                   (z tells almost nothing about x, whatever R is:
                                                          R - I_q is the marginal's mismatch, not a code)
        autoencoder        D < 0.075 H                   (near-perfect reconstruction)
        syntactic encoder  R >= 0.25 H, otherwise        (encodes pixel-level detail)
        semantic encoder   otherwise                     (a few nats: what the digit is)

    Applied in this order. I_q None (not measured) falls back to R, its upper bound. With H = 80.2
    nats it labels the paper's four -+v models (fig. 4) as the paper does: (156, 4.8) autoencoder,
    (120.3, 8.1) syntactic, (6.2, 74.1) semantic, (0.0004, 80.6) autodecoder.
    """
    information = rate if mutual_info is None else min(mutual_info, rate)
    if information < AUTODECODER_INFORMATION:
        return "autodecoder"
    if distortion < AUTOENCODER_DISTORTION * entropy:
        return "autoencoder"
    if rate >= SEMANTIC_RATE * entropy:
        return "syntactic encoder"
    return "semantic encoder"

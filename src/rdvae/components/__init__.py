"""Encoders, decoders, marginals and the layers they are built from."""

from .decoders import BernoulliDecoder, GaussianDecoder, mlp_decoder, simple_deconv_decoder
from .distributions import DiagonalGaussianMixture, diagonal_normal, pairwise_log_prob
from .encoders import GaussianEncoder, mlp_encoder, simple_conv_encoder
from .marginals import GaussianMixtureMarginal, Marginal, StandardNormal, VampPrior

__all__ = [
    "BernoulliDecoder",
    "GaussianDecoder",
    "DiagonalGaussianMixture",
    "GaussianEncoder",
    "GaussianMixtureMarginal",
    "Marginal",
    "StandardNormal",
    "VampPrior",
    "diagonal_normal",
    "mlp_decoder",
    "mlp_encoder",
    "pairwise_log_prob",
    "simple_conv_encoder",
    "simple_deconv_decoder",
]

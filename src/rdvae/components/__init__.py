"""Encoders, decoders, marginals and the layers they are built from."""

from .decoders import BernoulliDecoder, mlp_decoder, simple_deconv_decoder
from .distributions import DiagonalGaussianMixture, diagonal_normal, pairwise_log_prob
from .encoders import GaussianEncoder, mlp_encoder, simple_conv_encoder
from .flows import AutoregressiveFlow, AutoregressiveFlowMarginal, FlowDistribution, IAFEncoder, IAFPosterior
from .gaussian_decoders import (
    GaussianDecoder,
    GaussianLikelihood,
    effective_beta,
    mlp_gaussian_decoder,
    reconstruction_rmse,
    soft_clip,
)
from .marginals import GaussianMixtureMarginal, Marginal, StandardNormal, VampPrior
from .pixelcnn import PixelCNN, PixelCNNBernoulli, PixelCNNDecoder

__all__ = [
    "AutoregressiveFlow",
    "AutoregressiveFlowMarginal",
    "FlowDistribution",
    "IAFEncoder",
    "IAFPosterior",
    "PixelCNN",
    "PixelCNNBernoulli",
    "PixelCNNDecoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "GaussianLikelihood",
    "DiagonalGaussianMixture",
    "GaussianEncoder",
    "GaussianMixtureMarginal",
    "Marginal",
    "StandardNormal",
    "VampPrior",
    "diagonal_normal",
    "effective_beta",
    "mlp_decoder",
    "mlp_encoder",
    "mlp_gaussian_decoder",
    "pairwise_log_prob",
    "reconstruction_rmse",
    "simple_conv_encoder",
    "simple_deconv_decoder",
    "soft_clip",
]

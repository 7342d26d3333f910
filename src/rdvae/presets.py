"""Named model presets: the paper's family codes and a few spelled-out aliases.

A family code is three characters (encoder, decoder, marginal) from {-,+} x {-,+} x {-,+,v}
as in "Fixing a Broken ELBO": `-` simple, `+` complex, `v` VampPrior. `mlp` is a small,
fast MLP family for quick work; `mlp-v` and `mlp-mog` swap its marginal.

    build_model("--v", event_shape=(1, 28, 28))
    build_model("mlp", event_shape=(1, 8, 8), latent_dim=8, hidden=[128])

Components register themselves in ENCODERS / DECODERS / MARGINALS, so a new component is one
entry, and every code combining it becomes buildable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .components import (
    GaussianMixtureMarginal,
    StandardNormal,
    VampPrior,
    mlp_decoder,
    mlp_encoder,
    simple_conv_encoder,
    simple_deconv_decoder,
)
from .components.bagofwords import BagOfWordsDecoder, BagOfWordsTrunk
from .components.discrete import BernoulliEncoder, BernoulliMarginal
from .components.flows import AutoregressiveFlowMarginal, IAFEncoder
from .components.gaussian_decoders import GAUSSIAN_DECODER_OPTIONS, mlp_gaussian_decoder
from .components.multi_rate import gate_options, multi_rate_decoder, multi_rate_encoder
from .components.pixelcnn import PixelCNNDecoder
from .estimators import DiscreteVAE
from .model import VAE


class UnknownFamilyError(ValueError):
    pass


# builder(event_shape, latent_dim, **options) -> module; options a builder does not take are ignored
ENCODERS: dict[str, Callable] = {
    # the paper's conv stack; conv_width scales its channels (1.0: the paper's)
    "-": lambda shape, d, activation="glu", conv_width=1.0, **_: simple_conv_encoder(
        shape, d, activation, conv_width),
    # the simple encoder followed by mean-only IAF steps, each shift from a MADE (appendix F.1)
    "+": lambda shape, d, activation="glu", conv_width=1.0, flow_steps=4, made_hidden=(640, 640, 640), **_:
        IAFEncoder(simple_conv_encoder(shape, d, activation, conv_width), d, flow_steps, tuple(made_hidden)),
    "mlp": lambda shape, d, hidden=(512, 256), activation="glu", **_: mlp_encoder(
        shape, d, hidden, activation),
    # semantic hashing ([Re] e1, e2, e3): word counts or frequencies -> logits of d bits
    "bow-counts": lambda shape, d, **_: BernoulliEncoder(BagOfWordsTrunk(shape[0], "counts"), d),
    "bow-freq-mlp": lambda shape, d, encoder_hidden=(512,), **_: BernoulliEncoder(
        BagOfWordsTrunk(shape[0], "frequencies", encoder_hidden), d),
    "bow-freq": lambda shape, d, **_: BernoulliEncoder(BagOfWordsTrunk(shape[0], "frequencies"), d),
    # Multi-Rate VAE: the plain families with every layer gated by log beta (components.multi_rate)
    "mr-mlp": lambda shape, d, hidden=(512, 256), activation="glu", **options:
        multi_rate_encoder(mlp_encoder(shape, d, hidden, activation), **gate_options(options)),
    "mr-conv": lambda shape, d, activation="glu", conv_width=1.0, **options:
        multi_rate_encoder(simple_conv_encoder(shape, d, activation, conv_width), **gate_options(options)),
}
DECODERS: dict[str, Callable] = {
    "-": lambda shape, d, activation="glu", conv_width=1.0, **_: simple_deconv_decoder(
        shape, d, activation, conv_width),
    # PixelCNN++-style autoregressive decoder conditioned on z (appendix F.2)
    "+": lambda shape, d, pixelcnn_channels=64, pixelcnn_levels=3, pixelcnn_resnet_layers=2, **_:
        PixelCNNDecoder(shape, d, pixelcnn_channels, pixelcnn_levels, pixelcnn_resnet_layers),
    "mlp": lambda shape, d, hidden=(512, 256), activation="glu", **_: mlp_decoder(
        shape, d, tuple(reversed(hidden)), activation),
    "bow": lambda shape, d, decoder_hidden=(), **_: BagOfWordsDecoder(d, shape[0], decoder_hidden),
    "mr-mlp": lambda shape, d, hidden=(512, 256), activation="glu", **options:
        multi_rate_decoder(mlp_decoder(shape, d, tuple(reversed(hidden)), activation), d,
                           **gate_options(options, "decoder")),
    "mr-conv": lambda shape, d, activation="glu", conv_width=1.0, **options:
        multi_rate_decoder(simple_deconv_decoder(shape, d, activation, conv_width), d,
                           **gate_options(options, "decoder")),
    # Gaussian decoder for grey levels (components.gaussian_decoders): variance fixed (sigma), learned,
    # optimal (sigma^2 = MSE) or per-dimension after a warm-up; options variance, sigma, log_sigma_min,
    # variance_warmup_steps, variance_ramp_steps, warmup_variance, stop_gradient
    "mlp-gauss": lambda shape, d, hidden=(512, 256), activation="glu", **options: mlp_gaussian_decoder(
        shape, d, tuple(reversed(hidden)), activation, **{k: v for k, v in options.items()
                                                          if k in GAUSSIAN_DECODER_OPTIONS}),
}
MARGINALS: dict[str, Callable] = {
    "-": lambda shape, d, **_: StandardNormal(d),
    # N(0, I) through mean-only Gaussian autoregressive flow layers (MAF-style; appendix F.3)
    "+": lambda shape, d, flow_steps=4, made_hidden=(640, 640, 640), **_: AutoregressiveFlowMarginal(
        d, flow_steps, tuple(made_hidden)),
    "v": lambda shape, d, pseudo_inputs=500, **_: VampPrior(d, shape, pseudo_inputs),
    "mog": lambda shape, d, mixture_components=16, **_: GaussianMixtureMarginal(d, mixture_components),
    "bernoulli": lambda shape, d, learned_marginal=False, **_: BernoulliMarginal(d, learned_marginal),
}
COMPONENT_NAMES = {"-": "simple", "+": "complex", "v": "vamp", "mlp": "mlp", "mog": "mixture"}


@dataclass(frozen=True)
class Preset:
    encoder: str
    decoder: str
    marginal: str
    latent_dim: int
    description: str
    model: Callable | None = None  # the model class when not VAE; it receives the options too


PRESETS: dict[str, Preset] = {
    "mlp": Preset("mlp", "mlp", "-", 32, "MLP encoder and decoder (gated), N(0, I) marginal"),
    "mlp-v": Preset("mlp", "mlp", "v", 32, "MLP encoder and decoder, VampPrior marginal"),
    "mlp-mog": Preset("mlp", "mlp", "mog", 32, "MLP encoder and decoder, learned mixture marginal"),
    "hash-e1": Preset("bow-counts", "bow", "bernoulli", 64,
                      "semantic hashing e1: word counts, linear encoder to Bernoulli bits", DiscreteVAE),
    "hash-e2": Preset("bow-freq-mlp", "bow", "bernoulli", 64,
                      "semantic hashing e2: word frequencies, one hidden layer of 512", DiscreteVAE),
    "hash-e3": Preset("bow-freq", "bow", "bernoulli", 64,
                      "semantic hashing e3: word frequencies, linear encoder", DiscreteVAE),
    "mr-mlp": Preset("mr-mlp", "mr-mlp", "-", 32,
                     "multi-rate VAE: the mlp family, every layer gated by beta"),
    "mr-conv": Preset("mr-conv", "mr-conv", "-", 64,
                      "multi-rate VAE: the simple conv family ('---'), every layer gated by beta"),
    "mlp-gauss": Preset("mlp", "mlp-gauss", "-", 32,
                        "MLP encoder, Gaussian MLP decoder for grey levels (model option variance: fixed, "
                        "learned, optimal or per-dimension), N(0, I) marginal"),
}
ALIASES = {
    "simple-simple-gaussian": "---",
    "simple-simple-vamp": "--v",
    "simple-simple-flow": "--+",
    "complex-simple-gaussian": "+--",
    "simple-complex-gaussian": "-+-",
}


def family_code_preset(code: str) -> Preset:
    enc, dec, mar = code
    if enc not in "-+" or dec not in "-+" or mar not in "-+v":
        raise UnknownFamilyError(
            f"family code {code!r}: expected encoder, decoder, marginal from {{-,+}} x {{-,+}} x {{-,+,v}}"
        )
    description = f"{COMPONENT_NAMES[enc]} encoder, {COMPONENT_NAMES[dec]} decoder, " \
                  f"{COMPONENT_NAMES[mar]} marginal"
    return Preset(enc, dec, mar, 64, description)


def resolve_family(family: str) -> Preset:
    """A preset name, a spelled-out alias or a three-character paper code -> its Preset."""
    name = ALIASES.get(family, family)
    if name in PRESETS:
        return PRESETS[name]
    if len(name) == 3 and set(name) <= set("-+v"):
        return family_code_preset(name)
    raise UnknownFamilyError(
        f"unknown family {family!r}; use a paper code such as '--v' or '-+-', "
        f"an alias ({', '.join(sorted(ALIASES))}) or a preset ({', '.join(sorted(PRESETS))})"
    )


def family_names() -> list[str]:
    codes = [e + d + m for e in "-+" for d in "-+" for m in "-+v"]
    return sorted(PRESETS) + codes + sorted(ALIASES)


def _component(table: dict[str, Callable], key: str, role: str, family: str) -> Callable:
    if key not in table:
        available = ", ".join(repr(k) for k in table)
        raise UnknownFamilyError(
            f"family {family!r} needs the {COMPONENT_NAMES.get(key, key)} {role} ({key!r}), "
            f"which is not available; {role}s available: {available}"
        )
    return table[key]


def build_model(family: str, event_shape: Sequence[int], latent_dim: int | None = None,
                **options) -> VAE:
    """Build the VAE of a family for data of `event_shape`; options go to the components
    (hidden, activation, pseudo_inputs, mixture_components, ...)."""
    preset = resolve_family(family)
    d = latent_dim or preset.latent_dim
    shape = tuple(event_shape)
    encoder = _component(ENCODERS, preset.encoder, "encoder", family)(shape, d, **options)
    decoder = _component(DECODERS, preset.decoder, "decoder", family)(shape, d, **options)
    marginal = _component(MARGINALS, preset.marginal, "marginal", family)(shape, d, **options)
    if preset.model is not None:  # e.g. DiscreteVAE, which takes its estimator options
        return preset.model(encoder, decoder, marginal, **options)
    return VAE(encoder, decoder, marginal)

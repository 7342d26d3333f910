"""rdvae's own encoders, decoders, marginals, model classes and families, registered through the
same decorators a user's plugin uses (rdvae.registry).

Components are named by what they are: encoders and decoders `-` (simple conv stacks) and `+` (IAF
encoder, PixelCNN++ decoder), marginals `-` (N(0, I)), `+` (flow) and `v` (VampPrior), and `mlp`,
`mlp-iaf`, `made`, `mog`, the bag-of-words ones, ... `mlp` is a small, fast MLP family for quick work;
`mlp-v` and `mlp-mog` swap its marginal; `mr-mlp` and `mr-conv` are multi-rate models. The families of
the paper studies (the three-character codes such as "-+v", "hash-e1", "dcgan") are registered by the
studies themselves (rdvae.studies), like any plugin's.

    build_model("mlp-v", event_shape=(1, 28, 28))
    build_model("mlp", event_shape=(1, 8, 8), latent_dim=8, hidden=[128])

Options go to the builders whose signature names them (`hidden` to both MLP encoder and decoder);
an option that none of a family's builders takes is a ConfigError listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from .components.gaussian_decoders import mlp_gaussian_decoder
from .components.layers import MADE_HIDDEN, MLP_HIDDEN
from .components.made_decoder import MADE_DECODER_HIDDEN, MADEDecoder
from .components.pixelcnn import PixelCNNDecoder
from .errors import ConfigError, unknown_names
from .estimators import DiscreteVAE
from .model import VAE, MultiRateVAE
from .registry import (
    DECODERS,
    ENCODERS,
    FAMILIES,
    MARGINALS,
    MODELS,
    check_option_value,
    register_decoder,
    register_encoder,
    register_marginal,
    register_model,
)

# defaults shared by several builders, written once (components.layers)
HIDDEN = MLP_HIDDEN
FLOW_STEPS = 4


class UnknownFamilyError(ConfigError):
    pass


# ------------------------------------------------------------------------------------ model classes
register_model("vae", VAE)
register_model("multi-rate", MultiRateVAE)
register_model("discrete", DiscreteVAE)


# ------------------------------------------------------------------------------------ encoders
@register_encoder("-")
def simple_encoder(event_shape, latent_dim, activation="glu", conv_width=1.0):
    """The paper's conv stack; conv_width scales its channels (1.0: the paper's)."""
    return simple_conv_encoder(event_shape, latent_dim, activation, conv_width)


@register_encoder("+")
def iaf_encoder(event_shape, latent_dim, activation="glu", conv_width=1.0, flow_steps=FLOW_STEPS,
                made_hidden=MADE_HIDDEN):
    """The simple encoder followed by mean-only IAF steps, each shift from a MADE (appendix F.1)."""
    return IAFEncoder(simple_conv_encoder(event_shape, latent_dim, activation, conv_width), latent_dim,
                      flow_steps, tuple(made_hidden))


@register_encoder("mlp")
def gated_mlp_encoder(event_shape, latent_dim, hidden=HIDDEN, activation="glu"):
    """MLP (gated linear units by default) to a diagonal Gaussian e(z|x)."""
    return mlp_encoder(event_shape, latent_dim, hidden, activation)


@register_encoder("mlp-iaf")
def mlp_iaf_encoder(event_shape, latent_dim, hidden=HIDDEN, activation="glu", flow_steps=FLOW_STEPS,
                    made_hidden=MADE_HIDDEN):
    """The MLP encoder followed by mean-only IAF steps, each shift from a MADE (a complex encoder at an
    MLP's cost)."""
    return IAFEncoder(mlp_encoder(event_shape, latent_dim, hidden, activation), latent_dim, flow_steps,
                      tuple(made_hidden))


def vocabulary_size(event_shape) -> int:
    """V of bag-of-words data (each example a vector of V word counts)."""
    if len(event_shape) != 1:
        raise ValueError(f"bag-of-words components need word-count vectors (event shape (V,)), got event "
                         f"shape {tuple(event_shape)}; use a dataset such as 20newsgroups")
    return event_shape[0]


# semantic hashing ([Re] e1, e2, e3): word counts or frequencies -> logits of d bits
@register_encoder("bow-counts")
def bow_counts_encoder(event_shape, latent_dim):
    """Word counts, a linear map to the logits of latent_dim Bernoulli bits (semantic hashing e1)."""
    return BernoulliEncoder(BagOfWordsTrunk(vocabulary_size(event_shape), "counts"), latent_dim)


@register_encoder("bow-freq-mlp")
def bow_frequencies_mlp_encoder(event_shape, latent_dim, encoder_hidden=(512,)):
    """Word frequencies, hidden layers, logits of latent_dim Bernoulli bits (semantic hashing e2)."""
    return BernoulliEncoder(BagOfWordsTrunk(vocabulary_size(event_shape), "frequencies", encoder_hidden),
                            latent_dim)


@register_encoder("bow-freq")
def bow_frequencies_encoder(event_shape, latent_dim):
    """Word frequencies, a linear map to the logits of latent_dim Bernoulli bits (semantic hashing e3)."""
    return BernoulliEncoder(BagOfWordsTrunk(vocabulary_size(event_shape), "frequencies"), latent_dim)


# ------------------------------------------------------------------------------------ decoders
@register_decoder("-")
def simple_decoder(event_shape, latent_dim, activation="glu", conv_width=1.0):
    """The paper's deconv stack to Bernoulli logits (appendix F.2); conv_width scales its channels."""
    return simple_deconv_decoder(event_shape, latent_dim, activation, conv_width)


@register_decoder("+")
def pixelcnn_decoder(event_shape, latent_dim, pixelcnn_channels=64, pixelcnn_levels=3,
                     pixelcnn_resnet_layers=2):
    """PixelCNN++-style autoregressive decoder conditioned on z (appendix F.2)."""
    return PixelCNNDecoder(event_shape, latent_dim, pixelcnn_channels, pixelcnn_levels,
                           pixelcnn_resnet_layers)


@register_decoder("made")
def made_decoder(event_shape, latent_dim, decoder_hidden=MADE_DECODER_HIDDEN):
    """Autoregressive Bernoulli decoder: a MADE over the pixels with z fed to every layer
    (components.made_decoder; a cheaper alternative to the PixelCNN, compared in
    benchmarks/ar_decoders.py)."""
    return MADEDecoder(event_shape, latent_dim, tuple(decoder_hidden))


@register_decoder("mlp")
def gated_mlp_decoder(event_shape, latent_dim, hidden=HIDDEN, activation="glu"):
    """MLP (the encoder's layers mirrored) to Bernoulli logits: d(x|z) for binary data."""
    return mlp_decoder(event_shape, latent_dim, tuple(reversed(hidden)), activation)


@register_decoder("bow")
def bow_decoder(event_shape, latent_dim, decoder_hidden=()):
    """Bits to a softmax over the vocabulary: a multinomial d(x|z) over the words of a document."""
    return BagOfWordsDecoder(latent_dim, vocabulary_size(event_shape), decoder_hidden)


@register_decoder("mlp-gauss")
def gaussian_mlp_decoder(event_shape, latent_dim, hidden=HIDDEN, activation="glu", variance="optimal",
                         sigma=1.0, log_sigma_min=-6.0, variance_warmup_steps=0, variance_ramp_steps=0,
                         warmup_variance="optimal", stop_gradient=False):
    """Gaussian decoder for grey levels (components.gaussian_decoders): variance fixed (sigma),
    learned, optimal (sigma^2 = MSE) or per-dimension after a warm-up."""
    return mlp_gaussian_decoder(event_shape, latent_dim, tuple(reversed(hidden)), activation, variance,
                                sigma, log_sigma_min, variance_warmup_steps, variance_ramp_steps,
                                warmup_variance, stop_gradient)


# ------------------------------------------------------------------------------------ marginals
@register_marginal("-")
def standard_normal(event_shape, latent_dim):
    """m(z) = N(0, I)."""
    return StandardNormal(latent_dim)


@register_marginal("+")
def flow_marginal(event_shape, latent_dim, flow_steps=FLOW_STEPS, made_hidden=MADE_HIDDEN):
    """N(0, I) through mean-only Gaussian autoregressive flow layers (MAF-style; appendix F.3)."""
    return AutoregressiveFlowMarginal(latent_dim, flow_steps, tuple(made_hidden))


@register_marginal("v")
def vamp_prior(event_shape, latent_dim, pseudo_inputs=500):
    """VampPrior: a mixture of e(z|u_k) over learned pseudo-inputs u_k (appendix F.3)."""
    return VampPrior(latent_dim, event_shape, pseudo_inputs)


@register_marginal("mog")
def mixture_marginal(event_shape, latent_dim, mixture_components=16):
    """A learned mixture of diagonal Gaussians."""
    return GaussianMixtureMarginal(latent_dim, mixture_components)


@register_marginal("bernoulli")
def bernoulli_marginal(event_shape, latent_dim, learned_marginal=False):
    """Independent Bernoulli bits, fixed at 1/2 or learned."""
    return BernoulliMarginal(latent_dim, learned_marginal)


# ------------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class Family:
    """Which registered encoder, decoder, marginal and model class make a family."""

    encoder: str
    decoder: str
    marginal: str
    latent_dim: int = 32
    description: str = ""
    model: str = "vae"

    def parts(self) -> tuple[tuple[str, object, str], ...]:
        """(role, registry, name) of each builder, in the order they are built."""
        return (("encoder", ENCODERS, self.encoder), ("decoder", DECODERS, self.decoder),
                ("marginal", MARGINALS, self.marginal), ("model", MODELS, self.model))

    @property
    def model_class(self) -> type:
        """The model class; its capabilities (e.g. rdvae.protocols.BetaConditioned) are what the family's
        models can do."""
        return MODELS[self.model]

    def options(self) -> dict[str, object]:
        """Every option a builder of the family takes, with the first default found."""
        found: dict[str, object] = {}
        for _, registry, name in self.parts():
            for key, default in registry.options(name).items():
                found.setdefault(key, default)
        return found


def register_family(name: str, encoder: str, decoder: str, marginal: str, latent_dim: int = 32,
                    description: str = "", model: str = "vae", aliases: Sequence[str] = (),
                    replace: bool = False) -> Family:
    """Register a family: registered encoder, decoder, marginal and model class names, the default
    latent dimension and a one-line description."""
    if not (isinstance(latent_dim, int) and latent_dim >= 1):
        raise ConfigError(f"family {name!r}: latent_dim must be an integer >= 1, got {latent_dim!r}")
    family = Family(encoder, decoder, marginal, latent_dim, description, model)
    return FAMILIES.register(name, family, replace=replace, aliases=aliases)


COMPONENT_NAMES = {"-": "simple", "+": "complex", "v": "vamp", "mlp": "mlp", "mog": "mixture",
                   "mlp-iaf": "complex (MLP + IAF)"}

register_family("mlp", "mlp", "mlp", "-", 32, "MLP encoder and decoder (gated), N(0, I) marginal")
register_family("mlp-v", "mlp", "mlp", "v", 32, "MLP encoder and decoder, VampPrior marginal")
register_family("mlp-mog", "mlp", "mlp", "mog", 32, "MLP encoder and decoder, learned mixture marginal")
register_family("mlp-gauss", "mlp", "mlp-gauss", "-", 32,
                "MLP encoder, Gaussian MLP decoder for grey levels and real values (model option variance: "
                "fixed, learned, optimal or per-dimension), N(0, I) marginal")
register_family("mr-mlp", "mlp", "mlp", "-", 32, "multi-rate VAE: the mlp family, its layers gated by beta",
                model="multi-rate")
register_family("mr-conv", "-", "-", "-", 64,
                "multi-rate VAE: the simple conv family ('---'), its layers gated by beta",
                model="multi-rate")


# ------------------------------------------------------------------------------------ lookups
def resolve_family(family: str) -> Family:
    """A registered family name or alias (a paper study's code such as "-+v" included) -> its Family."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise UnknownFamilyError(
            f"unknown family {family!r}; use a paper code such as '--v' or '-+-', or a registered family "
            f"({', '.join(sorted(FAMILIES.names(aliases=True)))}); `rdvae list families` describes them")
    return FAMILIES[family]


def family_names() -> list[str]:
    return sorted(FAMILIES.names(aliases=True))


def options_for(family: str, options: dict) -> dict:
    """The subset of `options` that the family's builders take (for grids over families that share a
    set of options, each family getting its own)."""
    accepted = resolve_family(family).options()
    return dict(options) if "**" in accepted else {k: v for k, v in options.items() if k in accepted}


def check_model_options(family: str, options: dict) -> None:
    """ConfigError for options that no builder of the family takes (with suggestions)."""
    accepted = resolve_family(family).options()
    if "**" in accepted or not options:
        return
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise unknown_names("model option(s)", unknown, [k for k in accepted if k != "**"],
                            f" for family {family!r}")
    for key, value in options.items():
        check_option_value(f"family {family!r}", key, value, accepted[key])


def build_model(family: str, event_shape: Sequence[int], latent_dim: int | None = None,
                **options) -> VAE:
    """Build the model of a family for data of `event_shape`; each option goes to the builders whose
    signature names it (hidden, activation, pseudo_inputs, estimator, analytic_rate, ...)."""
    fam = resolve_family(family)
    check_model_options(family, options)
    shape, d = tuple(event_shape), latent_dim or fam.latent_dim
    built = []
    for role, registry, name in fam.parts():
        accepted = registry.options(name)
        given = options if "**" in accepted else {k: v for k, v in options.items() if k in accepted}
        leading = tuple(built) if role == "model" else (shape, d)
        built.append(registry.build(name, *leading, where=f" (the {role} of family {family!r})", **given))
    return built[-1]

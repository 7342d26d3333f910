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
from .model import VAE


class UnknownFamilyError(ValueError):
    pass


# builder(event_shape, latent_dim, **options) -> module; options a builder does not take are ignored
ENCODERS: dict[str, Callable] = {
    "-": lambda shape, d, activation="glu", **_: simple_conv_encoder(shape, d, activation),
    "mlp": lambda shape, d, hidden=(512, 256), activation="glu", **_: mlp_encoder(
        shape, d, hidden, activation),
}
DECODERS: dict[str, Callable] = {
    "-": lambda shape, d, activation="glu", **_: simple_deconv_decoder(shape, d, activation),
    "mlp": lambda shape, d, hidden=(512, 256), activation="glu", **_: mlp_decoder(
        shape, d, tuple(reversed(hidden)), activation),
}
MARGINALS: dict[str, Callable] = {
    "-": lambda shape, d, **_: StandardNormal(d),
    "v": lambda shape, d, pseudo_inputs=500, **_: VampPrior(d, shape, pseudo_inputs),
    "mog": lambda shape, d, mixture_components=16, **_: GaussianMixtureMarginal(d, mixture_components),
}
COMPONENT_NAMES = {"-": "simple", "+": "complex", "v": "vamp", "mlp": "mlp", "mog": "mixture"}


@dataclass(frozen=True)
class Preset:
    encoder: str
    decoder: str
    marginal: str
    latent_dim: int
    description: str


PRESETS: dict[str, Preset] = {
    "mlp": Preset("mlp", "mlp", "-", 32, "MLP encoder and decoder (gated), N(0, I) marginal"),
    "mlp-v": Preset("mlp", "mlp", "v", 32, "MLP encoder and decoder, VampPrior marginal"),
    "mlp-mog": Preset("mlp", "mlp", "mog", 32, "MLP encoder and decoder, learned mixture marginal"),
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
    return VAE(encoder, decoder, marginal)

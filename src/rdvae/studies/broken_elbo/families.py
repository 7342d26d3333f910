"""The model families of "Fixing a Broken ELBO", registered as any plugin's are (rdvae.register_family).

A family code is three characters (encoder, decoder, marginal) from {-,+} x {-,+} x {-,+,v}, as in
the paper: `-` simple, `+` complex (an IAF encoder, a PixelCNN++ decoder, a flow marginal), `v`
VampPrior; "-+v" is the simple encoder, the autoregressive decoder and the VampPrior. The components
are rdvae's own (rdvae.presets).

The same 2 x 2 x 3 design at a CPU's cost is named "mlp" + the code, e.g. "mlp-+v": an MLP encoder
(with IAF steps for `+`) and the MLP simple decoder, the PixelCNN++ decoder at the sizes given
(pixelcnn_channels, ...), IAF and flow MADEs as given (made_hidden); the study's cpu scale trains them.
"""

from __future__ import annotations

from rdvae.presets import COMPONENT_NAMES, register_family

PAPER_CODES = tuple(e + d + m for e in "-+" for d in "-+" for m in "-+v")
# the names the paper's codes are also known by
ALIASES = {"---": ("simple-simple-gaussian",), "--v": ("simple-simple-vamp",),
           "--+": ("simple-simple-flow",),
           "+--": ("complex-simple-gaussian",), "-+-": ("simple-complex-gaussian",)}
# the components of the mlp-coded families, by the paper's code of encoder and decoder
MLP_CODED = {"encoder": {"-": "mlp", "+": "mlp-iaf"}, "decoder": {"-": "mlp", "+": "+"}}


def paper_code(family: str) -> str:
    """The three-character code (encoder, decoder, marginal) of a paper family or an mlp-coded one."""
    return family[3:] if family.startswith("mlp") and len(family) == 6 else family


def _described(code: str) -> str:
    e, d, m = code
    return f"{COMPONENT_NAMES[e]} encoder, {COMPONENT_NAMES[d]} decoder, {COMPONENT_NAMES[m]} marginal"


for _code in PAPER_CODES:
    _e, _d, _m = _code
    register_family(_code, _e, _d, _m, 64, _described(_code), aliases=ALIASES.get(_code, ()))

for _code in PAPER_CODES:
    _e, _d, _m = _code
    register_family("mlp" + _code, MLP_CODED["encoder"][_e], MLP_CODED["decoder"][_d], _m, 64,
                    _described(_code) + ", with an MLP encoder (and MLP simple decoder) (the broken-elbo cpu "
                    "scale)")

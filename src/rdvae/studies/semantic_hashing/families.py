"""The semantic-hashing families of the [Re] reproduction (sec. 5), registered as any plugin's are
(rdvae.register_family): rdvae's bag-of-words encoders to the logits of Bernoulli bits (e1 word counts,
linear; e2 word frequencies, one hidden layer of 512; e3 word frequencies, linear), its bag-of-words
decoder and the Bernoulli marginal, trained as discrete VAEs."""

from __future__ import annotations

from rdvae.presets import register_family

ENCODERS = {"e1": "bow-counts", "e2": "bow-freq-mlp", "e3": "bow-freq"}
DESCRIPTIONS = {"e1": "word counts, linear encoder to Bernoulli bits",
                "e2": "word frequencies, one hidden layer of 512", "e3": "word frequencies, linear encoder"}

for _code, _encoder in ENCODERS.items():
    register_family(f"hash-{_code}", _encoder, "bow", "bernoulli", 64,
                    f"semantic hashing {_code}: " + DESCRIPTIONS[_code], model="discrete")

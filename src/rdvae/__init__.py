"""rdvae: variational autoencoders judged by rate and distortion."""

__version__ = "0.1.0"

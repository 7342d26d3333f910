"""What "Fixing a Broken ELBO" (Alemi et al., ICML 2018) reports for MNIST, the numbers this study's
tables set its runs beside: H_hat over the paper's runs, the four models of fig. 4, and its betas."""

from __future__ import annotations

FIG4_FAMILY = "-+v"   # the family of figs. 4a/b: simple encoder, PixelCNN++ decoder, VampPrior
PAPER_H_HAT = 80.2    # nats: best -ELBO over the paper's 209 runs, an upper bound on H
# family -+v with KL annealing (fig. 4): beta -> (R, D, ELBO, regime)
PAPER_FIG4 = {0.1: (156.0, 4.8, -161.0, "autoencoder"), 0.15: (120.3, 8.1, -128.0, "syntactic encoder"),
              1.0: (6.2, 74.1, -80.3, "semantic encoder"), 1.1: (0.0004, 80.6, -80.6, "autodecoder")}
# "Runs were performed at various values of beta ranging from 0.1 to 10.0, both with and without KL
# annealing" (section 4); the betas of the paper scale
PAPER_BETAS = (0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.1, 1.5, 2.0, 3.0, 5.0, 10.0)
# "the frontiers [of simple and autoregressive decoders] largely track one another at rates above 22
# nats" (section 4, fig. 3a(iii)): below it lie the low rates where simple decoders fail
TRACKING_RATE = 22.0

"""Discrete encoders and marginals: densities, KLs and pairwise evaluation against brute force."""

import math

import torch
from torch.distributions import Bernoulli, Independent

from rdvae.components import pairwise_log_prob
from rdvae.components.bagofwords import (
    BagOfWordsDecoder,
    BagOfWordsTrunk,
    corpus_smoothing,
    saturated_distortion,
    word_frequencies,
)
from rdvae.components.discrete import (
    BernoulliEncoder,
    BernoulliMarginal,
    CategoricalEncoder,
    CategoricalMarginal,
    FactorizedBitsEncoder,
    IdentityTrunk,
    bernoulli_code,
    bit_table,
    one_hot_categorical,
)
from rdvae.model import analytic_kl


def enumerated_kl(q, p, states):
    log_q = q.log_prob(states.unsqueeze(-2))          # [S, B]
    log_p = p.log_prob(states).unsqueeze(-1)          # [S, 1]
    return (log_q.exp() * (log_q - log_p)).sum(0)


def test_bernoulli_code_density_matches_torch_and_sums_to_one():
    logits = torch.randn(3, 4) * 3
    q = bernoulli_code(logits)
    reference = Independent(Bernoulli(logits=logits), 1)
    states = bit_table(4)
    torch.testing.assert_close(q.log_prob(states.unsqueeze(1)), reference.log_prob(states.unsqueeze(1)))
    torch.testing.assert_close(q.log_prob(states.unsqueeze(1)).exp().sum(0), torch.ones(3))
    assert bit_table(2).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_pairwise_log_prob_of_codes_matches_a_loop():
    q = bernoulli_code(torch.randn(5, 6))
    z = torch.randint(0, 2, (7, 6)).float()
    brute = torch.stack([torch.stack([bernoulli_code(q.logits[k]).log_prob(z[m]) for k in range(5)])
                         for m in range(7)])
    torch.testing.assert_close(pairwise_log_prob(q, z), brute)


def test_bernoulli_kl_is_analytic_broadcasts_and_matches_enumeration():
    q = bernoulli_code(torch.randn(4, 3) * 2)
    for marginal in (BernoulliMarginal(3), BernoulliMarginal(3, learned=True)):
        if isinstance(marginal.logits, torch.nn.Parameter):
            with torch.no_grad():
                marginal.logits.copy_(torch.tensor([0.5, -2.0, 1.0]))
        p = marginal()
        kl = analytic_kl(q, p)
        assert kl.shape == (4,)
        torch.testing.assert_close(kl, enumerated_kl(q, p, bit_table(3)))
    # against fair coins: KL = d log 2 - H(q)
    fair = BernoulliMarginal(3)()
    torch.testing.assert_close(analytic_kl(q, fair), 3 * math.log(2) - q.entropy())


def test_learned_marginals_have_parameters_fixed_ones_do_not():
    assert len(list(BernoulliMarginal(3).parameters())) == 0
    assert len(list(BernoulliMarginal(3, learned=True).parameters())) == 1
    assert len(list(CategoricalMarginal(4).parameters())) == 0
    assert len(list(CategoricalMarginal(4, learned=True).parameters())) == 1


def test_categorical_kl_matches_enumeration():
    q = one_hot_categorical(torch.randn(6, 4))
    p = CategoricalMarginal(4)()
    torch.testing.assert_close(analytic_kl(q, p), enumerated_kl(q, p, torch.eye(4)))


def test_factorized_bits_encoder_is_a_product_of_bernoullis():
    torch.manual_seed(0)
    enc = FactorizedBitsEncoder(IdentityTrunk(2), bits=2)
    x = torch.randn(5, 2)
    q = enc(x)
    g = enc.g(x)
    bits = bernoulli_code(g)  # the same distribution written over bits
    torch.testing.assert_close(q.probs, bits.log_prob(bit_table(2).unsqueeze(1)).exp().T)
    # factorized: p(00) p(11) = p(01) p(10)
    p = q.probs
    torch.testing.assert_close(p[:, 0] * p[:, 3], p[:, 1] * p[:, 2])


def test_encoders_return_their_distributions():
    x = torch.randn(3, 5)
    assert BernoulliEncoder(IdentityTrunk(5), 7)(x).event_shape == (7,)
    assert CategoricalEncoder(IdentityTrunk(5), 4)(x).probs.shape == (3, 4)


def test_bag_of_words_likelihood_and_saturated_distortion():
    counts = torch.tensor([[3.0, 0.0, 1.0, 0.0], [0.0, 2.0, 2.0, 1.0]])
    decoder = BagOfWordsDecoder(latent_dim=2, vocabulary=4, hidden=(8,))
    z = torch.randn(2, 2)
    d = decoder(z)
    logits = decoder.net(z).detach()
    manual = torch.stack([sum(counts[n, w] * (logits[n, w] - logits[n].exp().sum().log()) for w in range(4))
                          for n in range(2)])
    torch.testing.assert_close(d.log_prob(counts), manual)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(2))
    sat = saturated_distortion(counts)
    p_hat = word_frequencies(counts)
    expected = torch.tensor([-(3 * math.log(3 / 4) + math.log(1 / 4)),
                             -(4 * math.log(2 / 5) + math.log(1 / 5))])
    torch.testing.assert_close(sat, expected)
    # no decoder beats the document's own word distribution: D - D_sat >= 0, = 0 there
    assert (-d.log_prob(counts) - sat >= 0).all()
    from rdvae.components.bagofwords import WordCounts
    torch.testing.assert_close(-WordCounts(p_hat.clamp_min(1e-30).log()).log_prob(counts), sat)


def test_corpus_smoothing_and_trunk_features():
    counts = torch.tensor([[3.0, 0.0, 1.0, 0.0], [0.0, 2.0, 2.0, 0.0]])
    s = corpus_smoothing(counts)
    torch.testing.assert_close(s.sum(), torch.tensor(1.0))
    torch.testing.assert_close(s, (counts.sum(0) + 0.25) / (8 + 1.0))
    trunk = BagOfWordsTrunk(4, "frequencies")
    torch.testing.assert_close(trunk(counts), word_frequencies(counts))
    assert BagOfWordsTrunk(4, "counts", hidden=(16,))(counts).shape == (2, 16)

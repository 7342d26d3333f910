"""Hamming ranking precision@k against a brute-force loop."""

import pytest
import torch

from rdvae.evaluate.retrieval import hamming_distances, precision_at_k


def test_hamming_distances_count_differing_bits():
    q = torch.randint(0, 2, (6, 9)).float()
    d = torch.randint(0, 2, (11, 9)).float()
    brute = torch.tensor([[float((a != b).sum()) for b in d] for a in q], dtype=torch.float64)
    torch.testing.assert_close(hamming_distances(q, d), brute)


def test_precision_at_k_matches_a_loop_when_distances_are_distinct():
    # database codes are distinct 6-bit codes at distinct distances from the all-zero query
    database = torch.tensor([[1] * n + [0] * (6 - n) for n in range(7)], dtype=torch.float32)
    labels = torch.tensor([0, 0, 1, 0, 1, 1, 1])
    query = torch.zeros(1, 6)
    for k in range(1, 8):
        expected = (labels[:k] == 0).float().mean().item()
        assert precision_at_k(query, torch.tensor([0]), database, labels, k=k) == pytest.approx(expected)


def test_ties_are_broken_at_random_so_identical_codes_give_chance_precision():
    database = torch.zeros(2000, 8)
    labels = torch.arange(2000) % 4
    queries = torch.zeros(200, 8)
    p = precision_at_k(queries, torch.zeros(200, dtype=torch.long), database, labels, k=100)
    assert abs(p - 0.25) < 0.02
    with pytest.raises(ValueError, match="database size"):
        precision_at_k(queries, torch.zeros(200), database, labels, k=5000)

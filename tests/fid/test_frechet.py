import numpy as np
import pytest
import scipy.linalg
import torch

from rdvae.fid import FeatureStatistics, feature_statistics, frechet_distance


def stats(mean, cov):
    return FeatureStatistics(torch.as_tensor(mean, dtype=torch.float64),
                             torch.as_tensor(cov, dtype=torch.float64), 0)


def test_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(500, 20) @ torch.randn(20, 20)
    s = feature_statistics(features)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-7)


def test_statistics_are_the_sample_mean_and_unbiased_covariance():
    features = torch.randn(300, 5, dtype=torch.float64)
    s = feature_statistics(features)
    np.testing.assert_allclose(s.mean.numpy(), features.numpy().mean(0))
    np.testing.assert_allclose(s.covariance.numpy(), np.cov(features.numpy(), rowvar=False))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(torch.randn(1, 5))


def test_closed_form_for_diagonal_gaussians():
    """Commuting covariances: d^2 = ||mu_a - mu_b||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 5 + 4 + 1
    assert expected == pytest.approx(10.0)
    assert frechet_distance(stats(mu_a, np.diag(a)), stats(mu_b, np.diag(b))) == pytest.approx(10.0)


def test_matches_the_matrix_square_root_formula_for_full_covariances():
    g = np.random.default_rng(0)
    A, B = g.normal(size=(6, 6)), g.normal(size=(6, 6))
    cov_a, cov_b = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    mu_a, mu_b = g.normal(size=6), g.normal(size=6)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    got = frechet_distance(stats(mu_a, cov_a), stats(mu_b, cov_b))
    assert got == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(stats(mu_b, cov_b), stats(mu_a, cov_a)) == pytest.approx(got, rel=1e-8)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(stats([0.0], [[1.0]]), stats([0.0, 0.0], np.eye(2)))

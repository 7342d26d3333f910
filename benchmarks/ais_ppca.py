"""AIS against the closed forms of probabilistic PCA (a linear-Gaussian VAE): log-likelihood errors at
several step counts, and the decoder's AIS rate-distortion curve beside the analytic one (figure).

    OMP_NUM_THREADS=1 python benchmarks/ais_ppca.py --out docs/results
    python benchmarks/ais_ppca.py --data-dim 20 --latent-dim 5 --examples 100 --steps 100 300 1000 3000

The model is tests/helpers.ppca_vae (x = W z + mu + sigma eps, z ~ N(0, I)), the data are drawn from it
(evaluate.ais.simulate); log p(x) is N(x; mu, W W' + sigma^2 I) and p_beta(z|x) is Gaussian, so R_beta,
D_beta and log Z_beta are closed forms (tests/evaluate/test_ais.py, exact_rate_distortion). The curve's
accuracy is the distance of each AIS point to the analytic curve, in units of the curve's range over
the recorded betas (the measure of the tests), and the error of log Z_beta.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.evaluate.test_ais import exact_rate_distortion  # noqa: E402
from tests.helpers import ppca_log_likelihood, ppca_vae  # noqa: E402

from rdvae.evaluate.ais import ais_log_likelihood, rate_distortion_curve, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dim", type=int, default=20)
    parser.add_argument("--latent-dim", type=int, default=5)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--leapfrog", type=int, default=5)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--curve-steps", type=int, default=1000)
    parser.add_argument("--beta-min", type=float, default=0.01, help="annealing beta (weight of D)")
    parser.add_argument("--beta-max", type=float, default=100.0)
    parser.add_argument("--points", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="where ais-ppca.png goes (default: no figure)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    model, weight, bias = ppca_vae(args.data_dim, args.latent_dim, args.sigma, seed=3)
    weight, bias = weight.double(), bias.double()
    x, _ = simulate(model, args.examples, seed=4)
    exact = ppca_log_likelihood(x.double(), weight, bias, args.sigma)
    print(f"PPCA {args.data_dim} -> {args.latent_dim}, sigma {args.sigma}, {args.examples} simulated "
          f"examples, {args.chains} chains, {args.leapfrog} leapfrog; exact mean log p(x) {exact.mean():.4f}")
    print("| steps | mean error | mean abs error | max abs error | acceptance | gradient evals | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for steps in args.steps:
        result = ais_log_likelihood(model, x, steps, args.chains, leapfrog=args.leapfrog, seed=0)
        error = result["log_px"].double() - exact
        print(f"| {steps} | {error.mean():+.4f} | {error.abs().mean():.4f} | {error.abs().max():.4f} | "
              f"{result['ais_acceptance']:.2f} | {result['ais_gradient_evaluations']:.3g} | "
              f"{result['ais_seconds']:.1f} |")
    started = time.perf_counter()
    curve = rate_distortion_curve(model, x, args.curve_steps, beta_max=args.beta_max, beta_min=args.beta_min,
                                  points=args.points, start=min(1e-3, args.beta_min), chains=args.chains,
                                  leapfrog=args.leapfrog, seed=1)

    def analytic(beta):
        return torch.stack([t.mean() for t in exact_rate_distortion(x, weight, bias, beta, args.sigma)])

    at_points = torch.stack([analytic(b) for b in curve["beta"]])
    dense_betas = torch.logspace(-5, 4, 4000, dtype=torch.float64)
    dense = torch.stack([analytic(b) for b in dense_betas.tolist()])
    scale = at_points[:, :2].max(0).values - at_points[:, :2].min(0).values
    distances = [((dense[:, :2] - torch.tensor([r, d], dtype=torch.float64)) / scale).norm(dim=1).min().item()
                 for r, d in zip(curve["rate"], curve["distortion"], strict=True)]
    log_z_error = torch.tensor(curve["log_normalizer"], dtype=torch.float64) - at_points[:, 2]
    print(f"RD curve: {curve['steps']} steps, betas {args.beta_min:g}..{args.beta_max:g} ({args.points} "
          f"points), {time.perf_counter() - started:.1f} s, {curve['gradient_evaluations']:.3g} gradient "
          "evaluations")
    print(f"  largest distance to the analytic curve: {100 * max(distances):.2f} % of the range "
          f"(R {scale[0]:.2f}, D {scale[1]:.2f} nats); largest |log Z_beta error| "
          f"{log_z_error.abs().max():.4f} nats; AIS NLL at beta = 1 {curve['ais_nll']:.4f} "
          f"(exact {-exact.mean():.4f})")
    print("| beta | R (AIS) | R (exact) | D (AIS) | D (exact) | log Z error |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, r, d, (er, ed, _), e in zip(curve["beta"], curve["rate"], curve["distortion"], at_points.tolist(),
                                       log_z_error.tolist(), strict=True):
        print(f"| {b:.4g} | {r:.3f} | {er:.3f} | {d:.3f} | {ed:.3f} | {e:+.4f} |")
    if args.out is not None:
        draw(curve, dense, dense_betas, args)


def draw(curve, dense, dense_betas, args) -> None:
    from rdvae.plots.style import new_figure, save_figure, styled

    keep = (dense_betas >= args.beta_min / 3) & (dense_betas <= args.beta_max * 3)
    with styled():
        fig = new_figure(5.4, 4.4)
        ax = fig.add_subplot()
        ax.plot(dense[keep, 0], dense[keep, 1], color="#333333", linewidth=1.2,
                label="analytic R(D) of the decoder")
        ax.scatter(curve["rate"], curve["distortion"], s=30, color="#d62728", zorder=3,
                   label=f"AIS ({curve['steps']} steps, {args.chains} chains)")
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("distortion D (nats)")
        ax.set_title(f"linear-Gaussian decoder ({args.data_dim} -> {args.latent_dim}): AIS vs closed form")
        ax.grid(True, color="#eeeeee", linewidth=0.6)
        ax.legend()
    for path in save_figure(fig, args.out / "ais-ppca", ("png",)):
        print(path)


if __name__ == "__main__":
    main()

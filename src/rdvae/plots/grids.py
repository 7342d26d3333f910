"""Reconstruction and sample grids as in fig. 4 of "Fixing a Broken ELBO".

For each model a block of two columns: 'sample' is one draw x ~ d(x|z), 'average' the mean of
`decoder_draws` draws holding that z fixed. Reconstructions take z ~ e(z|x), several z per
input (one row each, the input repeated in the 'data' column); generations take z ~ m(z).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..device import seeded
from ..protocols import LatentVariableModel
from .style import new_figure, styled


def _images(x: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [0, 1] -> [N, H, W] (grey) or [N, H, W, 3] for imshow."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image grids need [N, C, H, W] images with 1 or 3 channels, got {tuple(x.shape)}")
    x = x.detach().float().clamp(0, 1).cpu()
    return x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()


def _tile(columns: Sequence[np.ndarray], group: int = 1) -> np.ndarray:
    """Images laid out as columns (each [rows, H, W(, 3)]) on a white canvas, a thin gap between
    images and a wider one between groups of `group` rows."""
    rows, h, w = columns[0].shape[:3]
    gap = max(1, h // 8)
    group_gap = max(2, h // 3) if group > 1 else gap
    tops = [r * (h + gap) + (r // group) * (group_gap - gap) for r in range(rows)]
    lefts = [c * (w + 2 * gap) for c in range(len(columns))]
    canvas = np.ones((tops[-1] + h, lefts[-1] + w, *columns[0].shape[3:]))
    for c, column in enumerate(columns):
        for r in range(rows):
            canvas[tops[r]:tops[r] + h, lefts[c]:lefts[c] + w] = column[r]
    return canvas


@torch.no_grad()
def _decode_draws(model: LatentVariableModel, z: torch.Tensor,
                  decoder_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """One sample and the mean of `decoder_draws` samples of d(x|z) for each z [N, d]."""
    dist = model.decoder(z)
    draws = dist.sample((decoder_draws,))  # [k, N, C, H, W]
    return _images(draws[0]), _images(draws.mean(0))


def _block_axes(fig: Figure, blocks: list[tuple[str, list[np.ndarray], list[str]]], ylabel: str | None,
                group: int = 1):
    widths = [len(cols) for _, cols, _ in blocks]
    axes = fig.subplots(1, len(blocks), gridspec_kw={"width_ratios": widths, "wspace": 0.04})
    axes = np.atleast_1d(axes)
    cmap = "gray" if blocks[0][1][0].ndim == 3 else None
    for ax, (title, columns, names) in zip(axes, blocks, strict=True):
        canvas = _tile(columns, group)
        ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        w = columns[0].shape[2]
        gap = max(1, columns[0].shape[1] // 8)
        ax.set_xticks([(w + 2 * gap) * i + (w - 1) / 2 for i in range(len(columns))], names, fontsize=7,
                      rotation=90)
        ax.set_yticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title, fontsize=8)
    if ylabel:
        axes[0].set_ylabel(ylabel, fontsize=8)
    return axes


def reconstruction_grid(models: Sequence[tuple[str, LatentVariableModel]], x: torch.Tensor, title: str,
                        z_draws: int = 2, decoder_draws: int = 5, seed: int = 0) -> Figure:
    """Fig. 4a/c: for each input, `z_draws` rows with z ~ e(z|x); per model a 'sample' and an
    'average' (of `decoder_draws` draws of d(x|z) with z fixed) column."""
    data = _images(x)[np.repeat(np.arange(len(x)), z_draws)]  # each input on z_draws rows
    blocks = [("data", [data], ["input"])]
    for label, model in models:
        device = next(model.parameters()).device
        with seeded(seed, device), torch.no_grad():
            q = model.encoder(x.to(device))
            z = q.sample((z_draws,)).transpose(0, 1).reshape(len(x) * z_draws, -1)  # input-major
            sample, average = _decode_draws(model, z, decoder_draws)
        blocks.append((label, [sample, average], ["sample", "average"]))
    return _figure(blocks, title, rows=len(data), group=z_draws,
                   ylabel=f"{len(x)} inputs x {z_draws} draws of z ~ e(z|x)")


def samples_grid(models: Sequence[tuple[str, LatentVariableModel]], title: str, n: int = 10,
                 decoder_draws: int = 5,
                 seed: int = 0) -> Figure:
    """Fig. 4b: z ~ m(z), one row each; per model a 'sample' and an 'average' column."""
    blocks = []
    for label, model in models:
        device = next(model.parameters()).device
        with seeded(seed, device), torch.no_grad():
            z = model.marginal_distribution().sample((n,))
            sample, average = _decode_draws(model, z, decoder_draws)
        blocks.append((label, [sample, average], ["sample", "average"]))
    return _figure(blocks, title, rows=n, ylabel="z ~ m(z)")


def _figure(blocks, title: str, rows: int, ylabel: str, group: int = 1) -> Figure:
    columns = sum(len(cols) for _, cols, _ in blocks)
    h, w = blocks[0][1][0].shape[1:3]
    scale = 0.42 * max(h, w) / 28 + 0.18
    with styled():
        fig = new_figure(max(4.0, columns * scale + 0.6), rows * scale * h / w + 1.2)
        _block_axes(fig, blocks, ylabel, group)
        fig.suptitle(title, fontsize=10)
    return fig


def image_columns(columns: Sequence[tuple[str, torch.Tensor]], title: str, ylabel: str = "") -> Figure:
    """Images side by side: one column per (name, images [N, C, H, W] in [0, 1]), all with the same N,
    so that row i shows example i in every column (e.g. ground truth beside its reconstructions)."""
    if not columns or len({len(x) for _, x in columns}) != 1:
        raise ValueError("image_columns needs at least one column, every column with the same number of "
                         "images")
    blocks = [("", [_images(x) for _, x in columns], [name for name, _ in columns])]
    return _figure(blocks, title, rows=len(columns[0][1]), ylabel=ylabel)

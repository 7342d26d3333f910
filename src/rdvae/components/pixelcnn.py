"""The complex decoder (+): a PixelCNN++-style autoregressive Bernoulli decoder d(x|z).

Appendix F.2 of "Fixing a Broken ELBO": gated units instead of ReLUs; six blocks at
28-14-7-7-14-28 resolution with two resnet layers each, 64 channels, shortcuts between
feature maps of matching size; z goes through a dense gated layer to H*W units, reshaped to
an H x W x 1 map and concatenated with the image (a 2-channel input); a 1x1 convolution gives
one Bernoulli logit per pixel.

Causality follows PixelCNN++ (Salimans et al. 2017): two streams, a "down" stream that sees
only rows above the current pixel (down-shifted convolutions) and a "down-right" stream that
sees rows above and pixels to the left in the current row; the inputs are shifted once at
the start, so the logit of pixel i (raster order) depends only on pixels j < i. The
conditioning map is a function of z alone, so it may be seen anywhere; it is fed with the
image as the paper does. Strided down-shifted convolutions and cropped transposed
convolutions change resolution without breaking causality (tests check the gradients).

`levels` resolution levels (3 -> 28, 14, 7), `resnet_layers` per block and `channels` are
configurable, so that a reduced network trains on a CPU. Single-channel images only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from .layers import gated_linear


def down_shift(x: Tensor) -> Tensor:
    """Move every row one down (zeros enter at the top)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: Tensor) -> Tensor:
    """Move every column one right (zeros enter at the left)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class DownShiftedConv2d(nn.Module):
    """Output (r, c) sees input rows r-kh+1..r and columns c-(kw-1)/2..c+(kw-1)/2."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(2, 3), stride: int = 1):
        super().__init__()
        self.pad = nn.ZeroPad2d(self.padding(*kernel))
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride)

    @staticmethod
    def padding(kh: int, kw: int) -> tuple[int, int, int, int]:
        return ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class DownRightShiftedConv2d(DownShiftedConv2d):
    """Output (r, c) sees input rows r-kh+1..r and columns c-kw+1..c."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(2, 2), stride: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride)

    @staticmethod
    def padding(kh: int, kw: int) -> tuple[int, int, int, int]:
        return (kw - 1, 0, kh - 1, 0)


class DownShiftedDeconv2d(nn.Module):
    """Stride-2 transposed convolution cropped so output (r, c) sees only rows above and the
    columns centred on c (the shift of DownShiftedConv2d)."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(2, 3), stride: int = 2):
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(in_ch, out_ch, kernel, stride, output_padding=1)

    @staticmethod
    def columns(kw: int, w: int) -> slice:
        return slice((kw - 1) // 2, w - (kw - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)
        kh, kw = self.kernel
        h, w = x.shape[-2:]
        return x[:, :, :h - kh + 1, self.columns(kw, w)]


class DownRightShiftedDeconv2d(DownShiftedDeconv2d):
    """As DownShiftedDeconv2d, with the columns at and left of c (the down-right shift)."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(2, 2), stride: int = 2):
        super().__init__(in_ch, out_ch, kernel, stride)

    @staticmethod
    def columns(kw: int, w: int) -> slice:
        return slice(0, w - kw + 1)


class GatedResnet(nn.Module):
    """x + glu(conv_out(glu(conv_in(x) + skip(a)))): the PixelCNN++ resnet layer with gated
    units; `a` (optional) is a shortcut input of `skip_channels` channels (1x1 conv)."""

    def __init__(self, channels: int, conv: type, skip_channels: int = 0):
        super().__init__()
        self.conv_in = conv(channels, 2 * channels)
        self.skip = nn.Conv2d(skip_channels, 2 * channels, 1) if skip_channels else None
        self.conv_out = conv(channels, 2 * channels)

    def forward(self, x: Tensor, a: Tensor | None = None) -> Tensor:
        h = self.conv_in(x)
        if a is not None:
            h = h + self.skip(a)
        h = F.glu(h, dim=1)
        return x + F.glu(self.conv_out(h), dim=1)


class PixelCNN(nn.Module):
    """Logits of every pixel given the image (causally) and a conditioning map."""

    def __init__(self, image_size: Sequence[int], channels: int = 64, levels: int = 3,
                 resnet_layers: int = 2, condition_channels: int = 1):
        super().__init__()
        height, width = image_size
        scale = 2 ** (levels - 1)
        if levels < 1 or resnet_layers < 1 or channels < 1:
            raise ValueError("PixelCNN needs levels, resnet_layers and channels >= 1")
        if height % scale or width % scale:
            raise ValueError(
                f"a PixelCNN with {levels} resolution levels needs height and width divisible by "
                f"{scale}, got {height}x{width}; use fewer levels"
            )
        c, n_in = channels, 1 + condition_channels
        self.levels, self.resnet_layers = levels, resnet_layers
        self.row_multiple = scale  # images cropped to a multiple of this many rows give the same logits
        self.u_init = DownShiftedConv2d(n_in, c, (2, 3))
        self.ul_init_up = DownShiftedConv2d(n_in, c, (1, 3))
        self.ul_init_left = DownRightShiftedConv2d(n_in, c, (2, 1))

        def stream(skip_u: int, skip_ul: int) -> tuple[nn.ModuleList, nn.ModuleList]:
            u = nn.ModuleList(GatedResnet(c, DownShiftedConv2d, skip_u * c) for _ in range(resnet_layers))
            ul = nn.ModuleList(GatedResnet(c, DownRightShiftedConv2d, skip_ul * c)
                               for _ in range(resnet_layers))
            return u, ul

        self.up_u, self.up_ul = nn.ModuleList(), nn.ModuleList()
        self.down_u, self.down_ul = nn.ModuleList(), nn.ModuleList()
        for _ in range(levels):
            u, ul = stream(0, 1)
            self.up_u.append(u)
            self.up_ul.append(ul)
            u, ul = stream(1, 2)
            self.down_u.append(u)
            self.down_ul.append(ul)
        self.downsize_u = nn.ModuleList(DownShiftedConv2d(c, c, (2, 3), 2) for _ in range(levels - 1))
        self.downsize_ul = nn.ModuleList(DownRightShiftedConv2d(c, c, (2, 2), 2) for _ in range(levels - 1))
        self.upsize_u = nn.ModuleList(DownShiftedDeconv2d(c, c, (2, 3)) for _ in range(levels - 1))
        self.upsize_ul = nn.ModuleList(DownRightShiftedDeconv2d(c, c, (2, 2)) for _ in range(levels - 1))
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """x [N, 1, H, W] in {0, 1}, condition [N, k, H, W] -> logits [N, 1, H, W]."""
        h = torch.cat([2.0 * x - 1.0, condition], dim=1)
        u = down_shift(self.u_init(h))
        ul = down_shift(self.ul_init_up(h)) + right_shift(self.ul_init_left(h))
        skips_u, skips_ul = [], []
        for level in range(self.levels):
            for layer_u, layer_ul in zip(self.up_u[level], self.up_ul[level], strict=True):
                u = layer_u(u)
                ul = layer_ul(ul, u)
                skips_u.append(u)
                skips_ul.append(ul)
            if level < self.levels - 1:
                u, ul = self.downsize_u[level](u), self.downsize_ul[level](ul)
        for level in range(self.levels):
            for layer_u, layer_ul in zip(self.down_u[level], self.down_ul[level], strict=True):
                u = layer_u(u, skips_u.pop())
                ul = layer_ul(ul, torch.cat([u, skips_ul.pop()], dim=1))
            if level < self.levels - 1:
                u, ul = self.upsize_u[level](u), self.upsize_ul[level](ul)
        return self.out(F.elu(ul))


class PixelCNNBernoulli(Distribution):
    """d(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i(x_<i, z))) in raster order.

    Batch shape [N] (one per z), event shape [1, H, W]. log_prob(x) runs the network on x
    (one pass); sample() is exact ancestral sampling, one network pass per pixel.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.boolean, 3)
    has_rsample = False

    def __init__(self, network: PixelCNN, condition: Tensor):
        self.network, self.condition = network, condition
        super().__init__(condition.shape[:1], torch.Size([1, *condition.shape[-2:]]), validate_args=False)

    def logits(self, x: Tensor) -> Tensor:
        return self.network(x, self.condition).float()

    def log_prob(self, value: Tensor) -> Tensor:
        if value.shape[:-3] != self.batch_shape:
            raise ValueError(
                f"PixelCNN log_prob needs one image per z: batch {tuple(self.batch_shape)}, "
                f"got images of shape {tuple(value.shape)}"
            )
        logits = self.logits(value)
        return -F.binary_cross_entropy_with_logits(logits, value.to(logits.dtype),
                                                   reduction="none").sum((-3, -2, -1))

    @torch.no_grad()
    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape)
        n = shape.numel()
        condition = self.condition.unsqueeze(0).expand(n, *self.condition.shape)
        condition = condition.reshape(-1, *self.condition.shape[1:])
        x = torch.zeros(len(condition), *self.event_shape, device=condition.device)
        height, width = self.event_shape[-2:]
        for r in range(height):
            # rows below r cannot affect row r: run on the top rows only (a whole number of
            # the coarsest cells, so the strided grids line up as in the full image)
            top = min(height, -(-(r + 1) // self.network.row_multiple) * self.network.row_multiple)
            for c in range(width):
                logits = self.network(x[:, :, :top], condition[:, :, :top])[:, 0, r, c]
                x[:, 0, r, c] = torch.bernoulli(torch.sigmoid(logits.float()))
        return x.reshape(*shape, *self.batch_shape, *self.event_shape)


class PixelCNNDecoder(nn.Module):
    """z -> dense gated layer to H*W units -> H x W map -> PixelCNN -> PixelCNNBernoulli."""

    def __init__(self, event_shape: Sequence[int], latent_dim: int, channels: int = 64, levels: int = 3,
                 resnet_layers: int = 2):
        super().__init__()
        if len(event_shape) != 3 or event_shape[0] != 1:
            raise ValueError(f"the PixelCNN decoder models 1-channel images [1, H, W], got {event_shape}")
        self.event_shape = tuple(event_shape)
        _, height, width = event_shape
        self.condition = gated_linear(latent_dim, height * width)
        self.network = PixelCNN((height, width), channels, levels, resnet_layers)

    def forward(self, z: Tensor) -> PixelCNNBernoulli:
        condition = self.condition(z).reshape(-1, 1, *self.event_shape[1:])
        return PixelCNNBernoulli(self.network, condition)

"""The optimizer registry: each built-in takes the same steps as the torch optimizer it wraps, bad
options are one-line errors naming them, and a user's optimizer registers like a built-in."""

import pytest
import torch

from rdvae import ConfigError, register_optimizer
from rdvae.engine.optimizers import OPTIMIZERS, build_optimizer


def _steps(optimizer_of, steps=5):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(7))
    target = torch.randn(7)
    optimizer = optimizer_of([w])
    for _ in range(steps):
        optimizer.zero_grad()
        ((w - target) ** 2).sum().backward()
        optimizer.step()
    return w.detach()


@pytest.mark.parametrize("name, options, reference", [
    ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.01, fused=True)),
    ("adam", {"fused": False, "betas": [0.5, 0.999]},
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.999))),
    ("adamw", {}, lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01, fused=True)),
    ("sgd", {"momentum": 0.9, "nesterov": True},
     lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True)),
    ("rmsprop", {"alpha": 0.9}, lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
])
def test_a_built_in_takes_the_steps_of_the_torch_optimizer(name, options, reference):
    ours = _steps(lambda p: build_optimizer(name, p, 0.01, options))
    assert torch.equal(ours, _steps(reference))


@pytest.mark.parametrize("name, options, message", [
    ("adam", {"betas": [1.5, 0.9]}, "betas must be two numbers in"),
    ("adam", {"betas": "x"}, "option betas='x' must be a list of numbers"),
    ("adam", {"momentum": 0.9}, "unknown optimizer option"),
    ("sgd", {"nesterov": True}, "nesterov=true needs momentum > 0"),
    ("adamm", {}, "did you mean 'adam'"),
])
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], 0.01, options)


def test_a_users_optimizer_registers_like_a_built_in():
    @register_optimizer("test-halving-sgd", replace=True)
    def halving(params, lr, factor: float = 0.5):
        return torch.optim.SGD(params, lr=lr * factor)

    assert "test-halving-sgd" in OPTIMIZERS.names()
    assert OPTIMIZERS.options("test-halving-sgd") == {"factor": 0.5}
    optimizer = build_optimizer("test-halving-sgd", [torch.nn.Parameter(torch.zeros(2))], 0.2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)

"""The one loop (rdvae.engine): every plan killed mid-epoch and resumed gets the weights of an
uninterrupted run; the guard with several optimizers; callbacks' state; a user's own plan."""

import math
from pathlib import Path

import pytest
import torch
from tests.helpers import Interrupt, kill_at

import rdvae
from rdvae.engine import Callback, FitOptions, ModelSelection, Plan, Step, fit
from rdvae.engine.optimizers import build_optimizer
from rdvae.rundir import TRAINER_STATE, WEIGHTS, RunDir, load_tensors


def _same_weights(a: Path, b: Path) -> None:
    x, _ = load_tensors(RunDir(a) / WEIGHTS)
    y, _ = load_tensors(RunDir(b) / WEIGHTS)
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_backward_passes_are_run_in_one_module_only():
    root = Path(rdvae.__file__).parent
    calling = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if ".backward(" in p.read_text())
    assert calling == ["engine/loop.py"]


class LeastSquares(Plan):
    """A user's plan: linear regression y = X w by minibatch SGD; the optimum is the least-squares
    solution (X^T X)^-1 X^T y."""

    kind = "least-squares"

    def __init__(self, n=64, d=3, batch=16, lr=0.1, optimizer="sgd"):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, d, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
        self.model = torch.nn.Linear(d, 1, bias=False)
        torch.nn.init.zeros_(self.model.weight)
        self.batch, self.lr, self.optimizer = batch, lr, optimizer

    def configure_optimizers(self):
        return [build_optimizer(self.optimizer, self.model.parameters(), self.lr)]

    def steps_per_epoch(self):
        return math.ceil(len(self.x) / self.batch)

    def epoch_batches(self, order, shuffle, start):
        permutation = torch.randperm(len(self.x), generator=order)
        for b in range(start, self.steps_per_epoch()):
            index = permutation[b * self.batch:(b + 1) * self.batch]
            yield self.x[index], self.y[index]

    def batch_size(self, batch):
        return len(batch[0])

    def training_step(self, batch, step, index):
        x, y = batch
        loss = ((self.model(x).squeeze(1) - y) ** 2).mean()
        return Step(loss, {"loss": loss})

    def lr_factor(self, step):   # decaying steps, so that SGD settles at the optimum
        return 1.0 / (1 + step / 50)

    def summary(self, loop):
        return {"status": "done", "weight": self.model.weight.detach().squeeze(0).tolist()}


def test_a_users_plan_reaches_the_least_squares_solution(tmp_path):
    plan = LeastSquares()
    summary = fit(plan, tmp_path / "ls", FitOptions(epochs=200, progress=False))
    exact = torch.linalg.lstsq(plan.x, plan.y.unsqueeze(1)).solution.squeeze(1)
    assert torch.allclose(torch.tensor(summary["weight"]), exact, atol=2e-3)
    assert RunDir(tmp_path / "ls").read_summary()["status"] == "done"
    assert [m["epoch"] for m in RunDir(tmp_path / "ls").read_metrics()] == []   # no MetricsFile given


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_a_plan_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch, optimizer):
    options = FitOptions(epochs=3, checkpoint_minutes=0.0, progress=False)
    fit(LeastSquares(optimizer=optimizer), tmp_path / "full", options)
    kill_at(monkeypatch, 6)   # 4 steps an epoch: mid-epoch 2
    with pytest.raises(Interrupt):
        fit(LeastSquares(optimizer=optimizer), tmp_path / "cut", options)
    assert load_tensors(RunDir(tmp_path / "cut") / TRAINER_STATE)[1]["counters"]["step"] == 6
    fit(LeastSquares(optimizer=optimizer), tmp_path / "cut", options, resume=True)
    _same_weights(tmp_path / "full", tmp_path / "cut")


class TwoPlayers(Plan):
    """Two optimizers, one parameter each; index 0's loss is NaN at the steps `bad` names."""

    def __init__(self, bad=()):
        self.model = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.ones(1)),
                                             "b": torch.nn.Parameter(torch.ones(1))})
        self.bad = set(bad)

    def configure_optimizers(self):
        return [torch.optim.SGD([self.model["a"]], lr=0.1), torch.optim.SGD([self.model["b"]], lr=0.1)]

    def steps_per_epoch(self):
        return 4

    def epoch_batches(self, order, shuffle, start):
        return (None for _ in range(start, 4))

    def training_step(self, batch, step, index):
        p = self.model["ab"[index]]
        loss = (p ** 2).sum() * (math.nan if index == 0 and step in self.bad else 1.0)
        return Step(loss, {f"loss_{index}": loss})

    def summary(self, loop):
        return {"status": "done"}


def test_with_two_optimizers_a_skipped_first_update_skips_the_second():
    plan = TwoPlayers(bad={1})
    fit(plan, None, FitOptions(epochs=1, progress=False))
    # each taken update multiplies by (1 - 2 * 0.1); step 1 skipped both
    assert plan.model["a"].item() == pytest.approx(0.8 ** 3)
    assert plan.model["b"].item() == pytest.approx(0.8 ** 3)


def test_model_selection_keeps_the_epoch_before_the_monitored_value_rose():
    class Loop:
        counters = {"epoch": 0}
        stop_reason, keep_weights = None, True

    selection, loop = ModelSelection("fid", "min", tolerance=0.05, reason="fid rose"), Loop()
    for epoch, fid in enumerate([10.0, 8.0, 8.3, 9.0], start=1):
        loop.counters["epoch"] = epoch
        record = {"fid": fid}
        selection.on_validation(loop, record)
    assert record["kept"] is False and loop.keep_weights is False and loop.stop_reason == "fid rose"
    assert selection.selected_epoch == 3 and selection.values == [10.0, 8.0, 8.3, 9.0]
    restored = ModelSelection("fid")
    restored.load_state_dict(selection.state_dict())
    assert restored.selected_epoch == 3 and restored.values == selection.values


class Counting(Callback):
    """A callback with state: the steps it saw (its state must survive a kill and resume)."""

    name = "counting"

    def __init__(self):
        self.seen = 0

    def on_step(self, loop, figures):
        self.seen += 1

    def on_fit_end(self, loop, summary):
        summary["seen"] = self.seen

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_a_callbacks_state_is_checkpointed_with_the_run(tmp_path, monkeypatch):
    options = FitOptions(epochs=2, checkpoint_minutes=0.0, progress=False)
    kill_at(monkeypatch, 5)
    with pytest.raises(Interrupt):
        fit(LeastSquares(), tmp_path / "r", options, [Counting()])
    summary = fit(LeastSquares(), tmp_path / "r", options, [Counting()], resume=True)
    assert summary["seen"] == 8   # 5 before the kill (restored with the step-5 checkpoint), 3 after


# -- the plans of rdvae's own trainers and studies -------------------------------------------------

def test_the_fid_classifier_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from rdvae.fid import train_classifier

    g = torch.Generator().manual_seed(0)
    x, labels = torch.rand(200, 1, 8, 8, generator=g), torch.randint(0, 3, (200,), generator=g)
    settings = dict(epochs=2, batch_size=32, progress=False, checkpoint_minutes=0.0)
    full = train_classifier(x, labels, **settings, run=tmp_path / "full")
    kill_at(monkeypatch, 10)   # 7 steps an epoch
    with pytest.raises(Interrupt):
        train_classifier(x, labels, **settings, run=tmp_path / "cut")
    assert load_tensors(RunDir(tmp_path / "cut") / TRAINER_STATE)[1]["counters"]["step"] == 10
    resumed = train_classifier(x, labels, **settings, run=tmp_path / "cut")
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values(),
                                                 strict=True))
    # and the same as without a run folder (the loop's checkpoints change nothing)
    plain = train_classifier(x, labels, epochs=2, batch_size=32, progress=False)   # no folder
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), plain.state_dict().values(),
                                                 strict=True))


def test_the_two_cluster_toy_killed_mid_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    from rdvae.studies.broken_elbo.toy import TOY_SETTINGS, train_toy
    from rdvae.studies.broken_elbo.two_cluster import two_cluster_data

    data = two_cluster_data(0.5)
    settings = dict(form="mixed", checkpoint_minutes=0.0, **TOY_SETTINGS["mixed"])
    full = train_toy(data, 0.5, 60, run=tmp_path / "full", **settings)
    kill_at(monkeypatch, 37)
    with pytest.raises(Interrupt):
        train_toy(data, 0.5, 60, run=tmp_path / "cut", **settings)
    assert load_tensors(RunDir(tmp_path / "cut") / TRAINER_STATE)[1]["counters"]["step"] == 37
    resumed = train_toy(data, 0.5, 60, run=tmp_path / "cut", **settings)
    assert resumed.summary(data) == full.summary(data)
    _same_weights(tmp_path / "full", tmp_path / "cut")
    with pytest.raises(rdvae.ConfigError, match="this toy run was trained with"):
        train_toy(data, 0.5, 61, run=tmp_path / "cut", **settings)


def test_an_expfam_toy_stage_killed_mid_run_resumes_to_the_same_model_and_curve(tmp_path, monkeypatch):
    from rdvae.studies.expfam_toy.study import build_toy_model, sample_mixture, train_stage

    x, _ = sample_mixture(40)
    full_model = build_toy_model("factorized")
    full = train_stage(full_model, x, 30, False, "", False, tmp_path / "full", checkpoint_minutes=0.0)
    kill_at(monkeypatch, 17)
    with pytest.raises(Interrupt):
        train_stage(build_toy_model("factorized"), x, 30, False, "", False, tmp_path / "cut", 0.0)
    assert load_tensors(RunDir(tmp_path / "cut") / TRAINER_STATE)[1]["counters"]["step"] == 17
    model = build_toy_model("factorized")
    curve = train_stage(model, x, 30, False, "", False, tmp_path / "cut", 0.0)
    assert curve == full and len(curve) == 30
    a, b = full_model.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(p.requires_grad for p in model.parameters())   # the frozen decoder is thawed again


def test_a_plan_whose_step_returns_no_step_gets_one_line_naming_the_fix():
    class Bare(LeastSquares):
        def training_step(self, batch, step, index):
            return super().training_step(batch, step, index).loss

    message = r"Bare.training_step must return an rdvae.engine.Step\(loss, figures\), got Tensor"
    with pytest.raises(TypeError, match=message):
        fit(Bare(), None, FitOptions(epochs=1, progress=False))

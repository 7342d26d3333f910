"""Atomic checkpoints in safetensors: nothing is ever unpickled.

trainer_state.safetensors holds the weights, the optimizers' tensors, the RNG states and
(as JSON metadata) the counters, the optimizers' scalar settings and the plan's and callbacks'
state (rdvae.engine); it alone is enough to resume. model.safetensors is written after it and
holds the weights only, for evaluation.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..rundir import TRAINER_STATE, WEIGHTS, RunDir, load_tensors, save_tensors


def _optimizers(optimizers) -> list[torch.optim.Optimizer]:
    return [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)


def _prefix(index: int) -> str:
    """The tensors' key prefix of the index-th optimizer ("optim." for the first: the layout of a run
    with one optimizer, as rdvae has always written it)."""
    return "optim." if index == 0 else f"optim{index}."


def save_checkpoint(run: RunDir, model: torch.nn.Module, optimizers, counters: dict,
                    rng: dict[str, torch.Tensor], state: dict | None = None) -> None:
    """trainer_state.safetensors (weights, each optimizer's tensors, RNG states; counters, the
    optimizers' scalars and `state` as JSON metadata), then model.safetensors."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    groups = []
    for index, optimizer in enumerate(_optimizers(optimizers)):
        optim = optimizer.state_dict()
        scalars: dict[str, dict] = {}
        for pid, param_state in optim["state"].items():
            for key, value in param_state.items():
                if torch.is_tensor(value):
                    tensors[f"{_prefix(index)}{pid}.{key}"] = value
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        groups.append({"param_groups": optim["param_groups"], "optim_scalars": scalars})
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    metadata = {"counters": counters, **groups[0], **(state or {})}
    if len(groups) > 1:
        metadata["more_optimizers"] = groups[1:]
    save_tensors(run / TRAINER_STATE, tensors, metadata)
    save_weights(run, model, counters)


def save_weights(run: RunDir, model: torch.nn.Module, counters: dict | None = None) -> None:
    save_tensors(run / WEIGHTS, dict(model.state_dict()), {"counters": counters or {}})


def load_weights(run: RunDir, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
    tensors, _ = load_tensors(run / WEIGHTS, device=str(device))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise ConfigError(
            f"the weights in {run / WEIGHTS} do not fit the model that {run.path}'s config builds. Was it "
            "trained on a model object passed to train()? Then pass that model again (load_run(path, "
            "model=...)) or register its family in a plugin. Trained with other model options, or saved by "
            "an older rdvae whose defaults differed? Set the options it was trained with under \"model\" "
            f"in its config.json. ({_first_line(err)})") from None


def repair_weights(run: RunDir) -> bool:
    """Rewrite a missing or damaged model.safetensors from trainer_state.safetensors (which every
    checkpoint writes first, with the same weights); True when it was rewritten. A damaged checkpoint
    too is a ConfigError (nothing to rewrite it from)."""
    if (run / WEIGHTS).exists():
        try:
            load_tensors(run / WEIGHTS)
            return False
        except ConfigError:
            pass
    if not (run / TRAINER_STATE).exists():
        raise ConfigError(f"{run / WEIGHTS} is missing or damaged and {run.path} has no {TRAINER_STATE} to "
                          "rewrite it from; train the run again")
    tensors, meta = load_tensors(run / TRAINER_STATE)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    save_tensors(run / WEIGHTS, weights, {"counters": meta.get("counters") or {}})
    return True


def _first_line(err: Exception, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def load_checkpoint(run: RunDir, model: torch.nn.Module, optimizers,
                    device: str | torch.device = "cpu") -> tuple[dict, dict[str, torch.Tensor], dict]:
    """Restore model and optimizers in place; return (counters, rng states, the checkpoint's metadata)."""
    tensors, meta = load_tensors(run / TRAINER_STATE, device="cpu")
    model.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
    optimizers = _optimizers(optimizers)
    groups = [meta, *meta.get("more_optimizers", [])]
    if len(groups) != len(optimizers):
        raise ConfigError(f"{run / TRAINER_STATE} holds the state of {len(groups)} optimizer(s), and this "
                          "run "
                          f"trains with {len(optimizers)}: it was written by another plan or rdvae version; "
                          "train the run again into a new folder")
    for index, (optimizer, group) in enumerate(zip(optimizers, groups, strict=True)):
        prefix = _prefix(index)
        optim_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, name = key[len(prefix):].split(".", 1)
                optim_state.setdefault(int(pid), {})[name] = value  # load_state_dict places it
        for pid, values in group["optim_scalars"].items():
            optim_state.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict({"state": optim_state, "param_groups": group["param_groups"]})
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return meta["counters"], rng, meta

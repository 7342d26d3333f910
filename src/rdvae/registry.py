"""Open registries: one per kind of thing a user can bring (in the spirit of torch.distributions'
`register_kl`). Built-ins register through the same decorators as a user's own file:

    from rdvae import register_encoder, register_decoder, register_family

    @register_encoder("my-encoder")
    def my_encoder(event_shape, latent_dim, hidden=64):     # options are its keyword parameters
        return MyEncoder(event_shape, latent_dim, hidden)

    register_family("mine", encoder="my-encoder", decoder="mlp", marginal="-", latent_dim=8)

A builder's options are its signature: `--set model.hidden=32` reaches `hidden`; an option that no
builder of the family takes is a ConfigError naming the valid ones (with a did-you-mean). The
leading parameters a builder always receives are not options:

    encoders, decoders, marginals   builder(event_shape, latent_dim, **options) -> nn.Module
    models                          cls(encoder, decoder, marginal, **options) -> a VAE
    families                        Family values (which encoder, decoder, marginal, model)
    datasets                        loader(**options) -> rdvae.data.Dataset
    objectives                      builder(**options) -> rdvae.objectives.Objective
    loggers                         builder(run_dir, **options) -> rdvae.tracking.Logger
    epoch figures                   builder(model, x, seed) -> a matplotlib Figure
    studies                         Study: run(scale, out, progress=True, **options) -> dict (`rdvae repro`)

Names registered by rdvae itself are loaded on the first lookup, together with the plugins of the
entry-point group `rdvae.plugins` (rdvae.plugins). Registering a name twice with different objects is
an error unless `replace=True`; registering the same function again (a plugin imported twice) is not.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, did_you_mean, unknown_names


class Registry:
    """name -> object (a builder, a class or a value), with the options of each builder."""

    def __init__(self, kind: str, builtins: Iterable[str] = (), leading: int = 0):
        self.kind = kind
        self.leading = leading          # positional parameters every call passes (not options)
        self._builtins = tuple(builtins)
        self._entries: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    # -- registering ---------------------------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, replace: bool = False,
                 aliases: Iterable[str] = ()) -> Any:
        """Register `obj` under `name` (and `aliases`); without `obj`, a decorator."""
        if obj is None:
            return lambda target: self.register(name, target, replace=replace, aliases=aliases)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a {self.kind} needs a non-empty name, got {name!r}")
        for key in (name, *aliases):
            old = self._entries.get(key, self._entries.get(self._aliases.get(key, "")))
            if old is not None and not replace and not _same(old, obj):
                raise ConfigError(
                    f"{self.kind} {key!r} is already registered ({_describe(old)}); pass replace=True "
                    f"to override it, or choose another name")
        self._entries[name] = obj
        for alias in aliases:
            self._aliases[alias] = name
        return obj

    # -- looking up ----------------------------------------------------------------------------
    def load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)
            from .plugins import load_entry_point_plugins

            load_entry_point_plugins()

    def canonical(self, name: str) -> str:
        self.load_builtins()
        return self._aliases.get(name, name)

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) in self._entries

    def __getitem__(self, name: str) -> Any:
        key = self.canonical(name)
        if key not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                              f"registered: {', '.join(self.names())}")
        return self._entries[key]

    def names(self, aliases: bool = False) -> list[str]:
        self.load_builtins()
        return list(self._entries) + (list(self._aliases) if aliases else [])

    def items(self) -> Iterator[tuple[str, Any]]:
        self.load_builtins()
        return iter(list(self._entries.items()))

    # -- options -------------------------------------------------------------------------------
    def options(self, name: str) -> dict[str, Any]:
        """The options `name`'s builder takes, with their defaults (inspect.Parameter.empty when
        required); {"**": ...} when it takes any keyword."""
        return builder_options(self[name], self.leading)

    def check_options(self, name: str, options: dict, where: str = "") -> None:
        accepted = self.options(name)
        if "**" in accepted:
            return
        unknown = [k for k in options if k not in accepted]
        if unknown:
            raise unknown_names(f"{self.kind} option(s)", unknown, accepted, where or f" of {name!r}")

    def check_values(self, name: str, options: dict, where: str = "") -> None:
        """ConfigError unless every option is one `name`'s builder takes, of the kind of its default."""
        self.check_options(name, options, where)
        accepted = self.options(name)
        for key, value in options.items():
            if key in accepted:
                check_option_value(f"{self.kind} {name!r}{where}", key, value, accepted[key])

    def build(self, name: str, *args, where: str = "", **options) -> Any:
        """Call `name`'s builder with the leading arguments and the options it takes (checked: known,
        and of the kind of their default). A ValueError or TypeError it raises becomes a ConfigError
        naming the builder, and so does a LookupError (KeyError, IndexError: e.g. an option value looked
        up in a table, `ACTIVATIONS[activation]`), naming the option whose value is the missing key.

        An AssertionError is not converted: an assert states an invariant of the code (and is gone
        under `python -O`), so its failure is a bug to show with its traceback; a builder rejects a
        bad option value with a ValueError naming the option, the value and what is allowed."""
        self.check_values(name, options, where)
        try:
            return self[name](*args, **options)
        except (ValueError, TypeError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{self.kind} {name!r}{where}: {err}") from err
        except LookupError as err:
            raise ConfigError(f"{self.kind} {name!r}{where}: {_lookup_failure(err, options)}") from err
        except RuntimeError as err:   # torch refusing what the options ask for (e.g. a negative width)
            if isinstance(err, NotImplementedError):   # what the code cannot do, not what was asked
                raise
            given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
            raise ConfigError(f"{self.kind} {name!r}{where}: the builder raised {type(err).__name__} "
                              f"{' '.join(str(err).split())[:300]} ({given})") from err


def _lookup_failure(err: LookupError, options: dict) -> str:
    """What a KeyError (or another LookupError) raised by a builder says: the option whose value was the
    key not found where one is (e.g. activation='relu' for KeyError: 'relu'), else the error itself."""
    raised = f"{type(err).__name__} {' '.join(str(err).split())}".strip()
    key = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else None
    named = [k for k, v in options.items() if key is not None and _holds(v, key)]
    if named:
        return (f"option value not accepted: {', '.join(f'{k}={options[k]!r}' for k in named)} (the builder "
                f"raised {raised})")
    given = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return f"the builder raised {raised}" + (f" (options given: {given})" if options else "")


def _holds(value, key) -> bool:
    """Whether an option's value is `key` or, for a list, holds it (values that cannot be compared: no)."""
    try:
        if isinstance(value, list | tuple):
            return any(type(v) is type(key) and v == key for v in value)
        return type(value) is type(key) and bool(value == key)
    except Exception:  # noqa: BLE001 - e.g. a tensor's ambiguous truth value
        return False


def _kind_of(default) -> tuple[str, Callable[[Any], bool]] | None:
    """What a value must be, judged from an option's default (None: anything)."""
    def number(v):
        return isinstance(v, int | float) and not isinstance(v, bool)

    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", number
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, tuple | list):
        if default and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in default):
            # widths, channels, sizes: a default of positive integers asks for positive integers
            return "a list of integers >= 1", lambda v: isinstance(v, list | tuple) and all(
                isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in v)
        if default and all(isinstance(d, int) and not isinstance(d, bool) for d in default):
            return "a list of integers", lambda v: isinstance(v, list | tuple) and all(
                isinstance(e, int) and not isinstance(e, bool) for e in v)
        if default and all(number(d) for d in default):
            return "a list of numbers", lambda v: isinstance(v, list | tuple) and all(number(e) for e in v)
        return "a list", lambda v: isinstance(v, list | tuple)
    return None


def check_option_value(where: str, name: str, value, default) -> None:
    """ConfigError when `value` is not of the kind of the option's default (a list for a list, an
    integer for an integer, ...); options without a default, or with default None, and the value
    None are not checked here."""
    kind = _kind_of(default)
    if value is None and not isinstance(default, bool):
        return   # None means "off" for many options (e.g. log_sigma_min); a builder refuses it otherwise
    if kind is not None and not kind[1](value):
        raise ConfigError(f"{where}: option {name}={value!r} must be {kind[0]} (default {default!r})")


def builder_options(builder: Callable, leading: int = 0) -> dict[str, Any]:
    """Keyword parameters of a function (or of a class's __init__) after the first `leading`."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(builder):
        params = params[1:]   # self
    options: dict[str, Any] = {}
    for param in params[leading:]:
        if param.kind is param.VAR_KEYWORD:
            options["**"] = None
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            options[param.name] = param.default
    return options


def _same(a: Any, b: Any) -> bool:
    """The same object, an equal value (e.g. a Family), or the same definition imported again (module
    and qualified name)."""
    if a is b or (not callable(a) and not callable(b) and a == b):
        return True
    key = (getattr(a, "__module__", None), getattr(a, "__qualname__", None))
    return key[1] is not None and key == (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", type(obj).__name__)
    return f"{getattr(obj, '__module__', '?')}.{name}"


_COMPONENTS = ("rdvae.presets",)
ENCODERS = Registry("encoder", _COMPONENTS, leading=2)
DECODERS = Registry("decoder", _COMPONENTS, leading=2)
MARGINALS = Registry("marginal", _COMPONENTS, leading=2)
MODELS = Registry("model", _COMPONENTS, leading=3)
FAMILIES = Registry("family", _COMPONENTS)
DATASETS = Registry("dataset", ("rdvae.data.builtin",))
OBJECTIVES = Registry("objective", ("rdvae.objectives",))
LOGGERS = Registry("logger", ("rdvae.tracking",), leading=1)
# figures the trainer hands to the loggers every few epochs (TrainConfig.log_figures_every)
EPOCH_FIGURES = Registry("epoch figure", (), leading=3)   # rdvae's own: rdvae.plots.epoch_figures, a plugin


def register_encoder(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register an encoder builder(event_shape, latent_dim, **options) -> module whose
    forward(x [B, *event_shape]) is e(z|x), a Distribution with batch [B] and event [latent_dim]."""
    return ENCODERS.register(name, builder, replace=replace, aliases=aliases)


def register_decoder(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a decoder builder(event_shape, latent_dim, **options) -> module whose
    forward(z [N, latent_dim]) is d(x|z), a Distribution with batch [N] and event event_shape."""
    return DECODERS.register(name, builder, replace=replace, aliases=aliases)


def register_marginal(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a marginal builder(event_shape, latent_dim, **options) -> rdvae.components.Marginal
    (forward(encoder) is m(z), a Distribution with event [latent_dim])."""
    return MARGINALS.register(name, builder, replace=replace, aliases=aliases)


def register_model(name: str, cls: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a model class cls(encoder, decoder, marginal, **options), a subclass of rdvae.VAE."""
    return MODELS.register(name, cls, replace=replace, aliases=aliases)


def register_dataset(name: str, loader: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a dataset loader(**options) -> rdvae.data.Dataset (options: config `data.*`, and
    `binarize` when the run sets one)."""
    return DATASETS.register(name, loader, replace=replace, aliases=aliases)


def register_objective(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register an objective builder(**options) -> rdvae.objectives.Objective; options are config
    fields of the same name (beta, target_rate, ...) and `objective_options.*`."""
    return OBJECTIVES.register(name, builder, replace=replace, aliases=aliases)


def register_logger(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a logger builder(run_dir, **options) -> rdvae.tracking.Logger (start, log, log_figure,
    finish); options are config `log_options.*` (each goes to the chosen loggers that take it)."""
    return LOGGERS.register(name, builder, replace=replace, aliases=aliases)


def register_epoch_figure(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register a figure builder(model, x, seed) -> matplotlib Figure that the trainer draws for its
    loggers every TrainConfig.log_figures_every epochs (x: a few examples of the evaluation split)."""
    return EPOCH_FIGURES.register(name, builder, replace=replace, aliases=aliases)


# ------------------------------------------------------------------------------------ studies
# rdvae's own studies (rdvae.studies) arrive like any plugin's, through the entry-point group: the core
# names none of them
STUDY_SCALES = ("smoke", "cpu", "paper")   # seconds (tests), hours on 2 cores, the paper's sizes (a GPU)


@dataclass(frozen=True)
class Study:
    """A reproduction of a paper's experiment, as `rdvae repro NAME --scale SCALE --out DIR` runs it:
    `run(scale, out, progress=True, **options)` writes its tables, figures and results under `out` and
    returns what it measured (a JSON-able dict). Its keyword parameters beyond `progress` are the options
    the command line may pass (workers, dataset, inception)."""

    name: str
    run: Callable[..., dict]
    description: str
    scales: tuple[str, ...] = STUDY_SCALES

    def check_scale(self, scale: str) -> str:
        """`scale`, or a ConfigError naming the scales the study has."""
        if scale not in self.scales:
            raise ConfigError(f"study {self.name!r}: scale must be one of {', '.join(self.scales)}, "
                              f"got {scale!r}")
        return scale


STUDIES = Registry("study")


def register_study(name: str, run: Callable[..., dict] | None = None, *, description: str,
                   scales: Iterable[str] = STUDY_SCALES, replace: bool = False, aliases=()):
    """Register a study: `run(scale, out, progress=True, **options) -> dict` under `name`, with a
    one-line description and the scales it has. Without `run`, a decorator on the study's run function
    (which it returns unchanged); called with `run`, returns the registered Study."""
    if run is None:
        def decorate(target: Callable[..., dict]) -> Callable[..., dict]:
            register_study(name, target, description=description, scales=scales, replace=replace,
                           aliases=aliases)
            return target

        return decorate
    scales = (scales,) if isinstance(scales, str) else tuple(scales)
    if not callable(run):
        raise ConfigError(f"study {name!r}: run must be a function run(scale, out, progress=True, ...), "
                          f"got {run!r}")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"study {name!r} needs a one-line description, got {description!r}")
    if not scales or not all(isinstance(s, str) and s.strip() for s in scales):
        raise ConfigError(f"study {name!r}: scales must be names such as {STUDY_SCALES}, got {scales!r}")
    return STUDIES.register(name, Study(name, run, description, scales), replace=replace, aliases=aliases)

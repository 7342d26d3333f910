"""The run configuration: everything needed to rebuild and re-run a training run.

Flat on purpose, so that a sweep can vary any field by name and config.json reads at a glance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..components.multi_rate import DEFAULT_BETA_RANGE
from ..data import DataError
from ..data.registry import check_dataset_options
from ..device import PRECISIONS, SEED_MAX, check_device
from ..errors import ConfigError, unknown_names
from ..objectives import build_objective
from ..plugins import fingerprints, load_plugins, record_paths, recorded_plugins
from ..presets import check_model_options, resolve_family
from ..registry import LOGGERS, OBJECTIVES, check_option_value
from ..rundir import RunDir

LR_SCHEDULES = ("constant", "paper", "cosine", "plateau")
AUTO = "auto"
BINARIZE_CHOICES = (None, "static", "dynamic", "threshold", AUTO)
# mappings of options that --set KEY.NAME=VALUE and a sweep's grid reach by their dotted names
OPTION_FIELDS = ("model", "objective_options", "data", "log_options")
# config fields that are objective parameters: a registered objective takes those it names
OBJECTIVE_FIELDS = ("beta", "target_rate", "free_bits", "kl_anneal_steps", "beta_min", "beta_max")
# recorded by the trainer, not chosen by the user: never a reason to refuse a resume
RECORDED_FIELDS = ("dataset_sha256", "plugin_fingerprints")
# where a run reports to (not what it computes): a resumed run may change them
TRACKING_FIELDS = ("log", "log_options", "log_every_steps", "log_figures_every", "log_tags")


def nest_model_options(settings: dict) -> dict:
    """Flat settings (``model.X``, ``objective_options.X`` and ``data.X`` keys allowed, mappings
    merged) -> a TrainConfig dict, as the CLI's --set and a sweep's grid write them."""
    config: dict = {}
    nested: dict[str, dict] = {}
    for key, value in settings.items():
        head, dot, name = key.partition(".")
        if head in OPTION_FIELDS and not dot:
            if not isinstance(value, dict):
                raise ConfigError(f"{head} must be a mapping of options, got {value!r}")
            nested.setdefault(head, {}).update(value)
        elif head in OPTION_FIELDS and name:
            nested.setdefault(head, {})[name] = value
        else:
            config[key] = value
    config.update(nested)
    return config


@dataclass
class TrainConfig:
    dataset: str = "digits"
    binarize: str | None = "auto"      # grey levels: None, "static", "dynamic", "threshold", or "auto"
    #                          (dynamic when a binary likelihood meets grey levels; recorded resolved)
    family: str = "mlp"
    latent_dim: int | None = None      # None: the family's default
    model: dict = field(default_factory=dict)  # component options (hidden, activation, ...)
    beta: float = 1.0
    target_rate: float | None = None
    free_bits: float | None = None
    kl_anneal_steps: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"      # "paper": constant for half the epochs, then linear to 0;
                                       # "plateau": constant until the validation objective plateaus
                                       # (or decay_epochs before the cap), then linear to 0 over
                                       # decay_epochs, then stop;
    #                                    "cosine": 5% linear warm-up, then cosine decay to 0
    normalized_gradients: bool = False
    plateau_epochs: int = 0            # k: the validation objective has plateaued when its best over the
                                       # last k epochs is less than plateau_nats below its best before
                                       # them (epochs of KL annealing not counted); 0: no criterion
    plateau_nats: float = 0.5          # the improvement over k epochs that still counts as progress
    decay_epochs: int = 0              # lr_schedule "plateau": epochs of linear decay to 0 after it
    seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    eval_split: str = "valid"          # evaluated after every epoch (falls back to test if empty)
    final_split: str = "test"          # evaluated at the end, into summary.json
    eval_batch_size: int = 1000
    iw_samples: int = 0                # IW-NLL at the end of training (0: skip)
    skip_grad_norm: float = 1e6        # skip updates whose gradient norm exceeds this
    max_consecutive_skips: int = 50    # then stop with an error, last good checkpoint kept
    max_skipped_fraction: float = 0.25  # a run that skipped more of its updates ends "diverged"
    checkpoint_minutes: float = 10.0   # also checkpoint mid-epoch this often
    analytic_rate: bool = True         # the analytic KL where torch registers one, else Monte Carlo
    multi_rate: bool = False           # Multi-Rate VAE: log beta ~ U[log beta_min, log beta_max] per example
    beta_min: float = DEFAULT_BETA_RANGE[0]
    beta_max: float = DEFAULT_BETA_RANGE[1]
    objective: str | None = None       # a registered objective; None: from the fields set (objective_name)
    objective_options: dict = field(default_factory=dict)   # its options that are not config fields
    data: dict = field(default_factory=dict)     # the dataset loader's options (file data: fractions, ...)
    allow_improper_likelihood: bool = False   # train even where the decoder's support misses the data
    dataset_sha256: str | None = None  # recorded: the data file's SHA-256, verified on eval and resume
    plugins: list = field(default_factory=list)  # modules / .py files that register what the run uses
    #                                              (config.json: files relative to the run folder)
    plugin_fingerprints: dict = field(default_factory=dict)  # recorded: module name -> the plugin's
    #                                              SHA-256 (and distribution), verified on eval and resume
    log: list = field(default_factory=list)      # trackers besides metrics.jsonl: tensorboard, mlflow, wandb
    #                                              or a registered logger (rdvae.register_logger)
    log_options: dict = field(default_factory=dict)  # the trackers' options (mlflow_uri, wandb_project, ...)
    log_every_steps: int = 10          # trackers get the training loss, R and D every this many steps
    log_figures_every: int = 5         # ... and reconstruction and sample grids every this many epochs
    #                                    (and after the last); 0: never
    log_tags: dict = field(default_factory=dict)  # tags / params the trackers attach (a sweep: swept fields)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, data_given: bool = False) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a mapping of fields, got {type(data).__name__}")
        if data.get("kind", "vae") != "vae":   # another trainer's run (e.g. a GAN: rdvae.train.adversarial)
            raise ConfigError(f"this is a {data['kind']!r} run, not a VAE run: it has no encoder, decoder "
                              "and marginal to build (a GAN's generator becomes a decoder in `rdvae repro "
                              "gan-decoder`, whose stage1-encoder/ and stage2-joint/ are VAE runs)")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise unknown_names("config field(s)", unknown, known)
        return cls(**data).validated(data_given)

    def objective_name(self) -> str:
        """The registered objective this config trains with."""
        if self.objective is not None:
            return self.objective
        if self.multi_rate:
            return "multi-rate"
        if self.target_rate is not None:
            return "target-rate"
        if self.free_bits is not None:
            return "free-bits"
        return "beta"

    def objective_instance(self):
        """A new instance of the objective (objectives keep state set by prepare)."""
        defaults = {f.name: f.default for f in fields(self) if f.name in OBJECTIVE_FIELDS}
        return build_objective(OBJECTIVES.canonical(self.objective_name()),
                               {k: getattr(self, k) for k in OBJECTIVE_FIELDS}, defaults,
                               self.objective_options)

    def validated(self, data_given: bool = False) -> TrainConfig:
        """Check every field; raise ConfigError naming the problem and the fix. Imports the plugins
        first (what they register may be named below) and records them by their canonical names.
        data_given: the caller passes a Dataset object, so the dataset name need not be registered."""
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        def integer(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def number(value) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        need(isinstance(self.plugins, list),
             f"plugins must be a list of modules or .py files, got {self.plugins!r}")
        self.plugins = load_plugins(self.plugins)
        need(isinstance(self.plugin_fingerprints, dict),
             f"plugin_fingerprints must be a mapping of module names, got {self.plugin_fingerprints!r}")
        self.check_tracking()
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every_steps"):
            value = getattr(self, name)
            need(integer(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        for name in ("iw_samples", "kl_anneal_steps", "max_consecutive_skips", "seed", "plateau_epochs",
                     "decay_epochs", "log_figures_every"):
            value = getattr(self, name)
            need(integer(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        need(self.seed <= SEED_MAX, f"seed must be at most {SEED_MAX}, got {self.seed!r}")
        need(number(self.lr) and self.lr > 0, f"lr must be a positive number, got {self.lr!r}")
        need(self.lr_schedule in LR_SCHEDULES,
             f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        need(number(self.plateau_nats) and self.plateau_nats >= 0,
             f"plateau_nats must be a number >= 0, got {self.plateau_nats!r}")
        if self.lr_schedule == "plateau":
            need(self.plateau_epochs >= 1, "lr_schedule 'plateau' needs plateau_epochs >= 1 (the epochs over "
                 f"which the validation objective must stop improving), got {self.plateau_epochs!r}")
            need(self.decay_epochs < self.epochs, f"decay_epochs ({self.decay_epochs}) must be below epochs "
                 f"({self.epochs}), the cap that the decay must end by")
        else:
            need(self.decay_epochs == 0, f"decay_epochs={self.decay_epochs!r} is used only by lr_schedule "
                 f"'plateau' (got {self.lr_schedule!r}); drop it or use that schedule")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_device(self.device)
        need(self.latent_dim is None or (integer(self.latent_dim) and self.latent_dim >= 1),
             f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        for name in ("eval_split", "final_split"):
            need(getattr(self, name) in ("train", "valid", "test"),
                 f"{name} must be train, valid or test, got {getattr(self, name)!r}")
        for name in OPTION_FIELDS:
            need(isinstance(getattr(self, name), dict),
                 f"{name} must be a mapping of options, got {getattr(self, name)!r}")
        for name in ("analytic_rate", "multi_rate", "normalized_gradients", "allow_improper_likelihood"):
            need(isinstance(getattr(self, name), bool),
                 f"{name} must be true or false, got {getattr(self, name)!r}")
        need(number(self.max_skipped_fraction) and 0 <= self.max_skipped_fraction <= 1,
             f"max_skipped_fraction must be a number in [0, 1], got {self.max_skipped_fraction!r}")
        need(number(self.checkpoint_minutes) and self.checkpoint_minutes >= 0,
             f"checkpoint_minutes must be a number >= 0, got {self.checkpoint_minutes!r}")
        need(number(self.skip_grad_norm) and self.skip_grad_norm > 0,
             f"skip_grad_norm must be > 0, got {self.skip_grad_norm!r}")
        need(isinstance(self.dataset, str) and bool(self.dataset),
             f"dataset must be a registered name or a data path, got {self.dataset!r}")
        need(self.objective is None or isinstance(self.objective, str),
             f"objective must be a registered objective's name, got {self.objective!r}")
        need(self.binarize in BINARIZE_CHOICES,
             f"binarize must be one of {', '.join(map(str, BINARIZE_CHOICES))}, got {self.binarize!r}")
        try:
            if not data_given:
                self.dataset = check_dataset_options(self.dataset, self.data,
                                                     None if self.binarize == AUTO else self.binarize)
        except DataError as err:
            raise ConfigError(str(err)) from None
        family = resolve_family(self.family)
        check_model_options(self.family, self.model)
        need(self.analytic_rate or "analytic_rate" in family.options(),
             f"family {self.family!r} has no analytic_rate option, so analytic_rate=false cannot be honoured")
        need(not (self.multi_rate and self.objective not in (None, "multi-rate")),
             f"multi_rate=true trains with the multi-rate objective, not objective={self.objective!r}")
        objective = self.objective_instance()
        required = getattr(objective, "requires", None)
        need(required is None or issubclass(family.model_class, required),
             f"objective {self.objective_name()!r} needs a {getattr(required, '__name__', '')} model, "
             f"and family {self.family!r} builds a {family.model_class.__name__}; use a family registered "
             "with that capability (e.g. mr-mlp, mr-conv for multi-rate)")
        return self


    def check_tracking(self) -> None:
        """log: registered logger names, each once; log_options: each taken by a chosen logger, of the
        kind of its default; log_tags: a mapping. (Whether a tracker's package is installed is checked
        when training starts, so that a run logged to MLflow still evaluates without it.)"""
        if not (isinstance(self.log, list) and all(isinstance(n, str) for n in self.log)):
            raise ConfigError(f"log must be a list of tracker names, got {self.log!r}; registered: "
                              f"{', '.join(LOGGERS.names())}")
        self.log = [LOGGERS.canonical(name) for name in self.log]
        for name in self.log:
            LOGGERS[name]   # unknown: a ConfigError listing the registered loggers
        if len(set(self.log)) != len(self.log):
            raise ConfigError(f"log names a tracker twice: {self.log!r}")
        if not isinstance(self.log_options, dict):
            raise ConfigError(f"log_options must be a mapping of tracker options, got {self.log_options!r}")
        if not isinstance(self.log_tags, dict):
            raise ConfigError(f"log_tags must be a mapping of tag names to values, got {self.log_tags!r}")
        accepted = {name: LOGGERS.options(name) for name in self.log}
        for key, value in self.log_options.items():
            takers = [name for name, options in accepted.items() if key in options or "**" in options]
            if not takers:
                known = {k for options in accepted.values() for k in options if k != "**"}
                raise unknown_names("log option", [key], known,
                                    f" for log {self.log!r}" if self.log else " (log names no tracker)")
            for name in takers:
                if key in accepted[name]:
                    check_option_value(f"logger {name!r}", key, value, accepted[name][key])


def read_run_config(run: RunDir, data_given: bool = False,
                    accept_plugin_changes: bool = False) -> tuple[TrainConfig, list[str]]:
    """The TrainConfig a run folder's config.json records, and the plugins whose code changed since
    (accepted with accept_plugin_changes, refused otherwise). Opening a folder runs none of its code
    unasked: the plugins it names are imported only as rdvae.plugins.recorded_plugins allows (named
    again with --plugin, already imported, or trusted), files resolved against the run folder."""
    data = run.read_config()
    if data.get("kind", "vae") != "vae":
        TrainConfig.from_dict(data)   # another trainer's run: refused with what it is
    plugins, changed = recorded_plugins(data.get("plugins", []), run.path, data.get("plugin_fingerprints"),
                                        accept_plugin_changes, what=f"run {run.path}")
    return TrainConfig.from_dict({**data, "plugins": plugins}, data_given), changed


def run_record(config: TrainConfig, folder) -> dict:
    """What config.json holds for `config` in `folder`: plugin files by their path relative to the
    folder, and every plugin's fingerprint as the code is now."""
    record = config.to_dict()
    record["plugins"] = record_paths(config.plugins, folder)
    record["plugin_fingerprints"] = fingerprints(config.plugins)
    return record

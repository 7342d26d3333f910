"""The run configuration: everything needed to rebuild and re-run a training run.

Flat on purpose, so that a sweep can vary any field by name and config.json reads at a glance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..components.multi_rate import DEFAULT_BETA_RANGE
from ..data import DataError
from ..data.dataset import SPLITS
from ..data.registry import check_dataset_options
from ..device import DEVICE_PATTERN, PRECISIONS, SEED_MAX
from ..engine.optimizers import OPTIMIZERS
from ..errors import ConfigError, unknown_names
from ..objectives import build_objective
from ..plugins import fingerprints, load_plugins, record_paths, recorded_plugins
from ..presets import check_model_options, resolve_family
from ..registry import LOGGERS, OBJECTIVES, check_option_value
from ..rundir import RunDir
from ..settings import (
    boolean,
    check_fields,
    check_value,
    choice,
    field_rows,
    integer,
    list_of,
    mapping,
    number,
    registered,
    settings_of,
    string,
)

LR_SCHEDULES = ("constant", "paper", "cosine", "plateau")
AUTO = "auto"
BINARIZE_CHOICES = (None, "static", "dynamic", "threshold", AUTO)
# mappings of options that --set KEY.NAME=VALUE and a sweep's grid reach by their dotted names
OPTION_FIELDS = ("model", "objective_options", "optimizer_options", "data", "log_options")
# config fields that are objective parameters: a registered objective takes those it names
OBJECTIVE_FIELDS = ("beta", "target_rate", "free_bits", "kl_anneal_steps", "beta_min", "beta_max")
# recorded by the trainer, not chosen by the user: never a reason to refuse a resume
RECORDED_FIELDS = ("dataset_sha256", "plugin_fingerprints")
# where a run reports to (not what it computes): a resumed run may change them
TRACKING_FIELDS = ("log", "log_options", "log_every_steps", "log_figures_every", "log_tags")


def nest_model_options(settings: dict) -> dict:
    """Flat settings (``model.X``, ``objective_options.X``, ``optimizer_options.X``, ``data.X`` and
    ``log_options.X`` keys allowed, mappings merged) -> a TrainConfig dict, as the CLI's --set and a
    sweep's grid write them."""
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
    """Everything that rebuilds and re-runs a VAE training run. Each field is declared once (rdvae.settings):
    its kind, default, range and help give its check in validated(), its `rdvae train` flag and its line
    in config_field_rows()."""

    dataset: str = string("digits", "a registered dataset (`rdvae list datasets`) or a path: .npy / .npz "
                          "array, folder of images", what="a registered name or a data path", accept=bool,
                          flag=True)
    binarize: str | None = choice(AUTO, BINARIZE_CHOICES, "grey levels: static, dynamic (fresh draws every "
                                  "batch), threshold, or auto (dynamic when a binary likelihood meets grey "
                                  "levels; recorded resolved); --set binarize=null keeps them as they are",
                                  flag=True)
    family: str = string("mlp", "a paper code such as -+v, or a registered family (`rdvae list families`)",
                         what="a paper code such as -+v or a registered family's name", accept=bool,
                         flag=True)
    latent_dim: int | None = integer(None, "latent dimensions", low=1, optional=True, flag=True,
                                     shown_default="the family's")
    model: dict = mapping("the family's component options (hidden, activation, ...): --set model.NAME=VALUE "
                          "(`rdvae list families` shows them)", what="a mapping of options")
    beta: float = number(1.0, "weight of the rate R in D + beta R", flag=True)
    target_rate: float | None = number(None, "train with D + |sigma - R| towards this rate (nats); null: off",
                                       optional=True, flag=True)
    free_bits: float | None = number(None, "no pressure on rates below this many nats: "
                                     "D + beta max(lambda, R); null: off", optional=True, flag=True)
    kl_anneal_steps: int = integer(0, "ramp the rate's weight from 0 to 1 over this many steps", low=0,
                                   flag=True)
    epochs: int = integer(10, "passes over the training split", low=1, flag=True)
    batch_size: int = integer(128, "examples per update", low=1, flag=True)
    lr: float = number(1e-3, "the optimizer's learning rate (the schedule scales it)", low=0, low_open=True,
                       flag=True)
    lr_schedule: str = choice("constant", LR_SCHEDULES,
                              "constant, paper (constant for half the epochs, then linearly to 0), cosine "
                              "(5% warm-up, cosine decay to 0) or plateau (constant until the validation "
                              "objective plateaus, see --plateau-epochs, then linearly to 0 over "
                              "--decay-epochs, then stop)", flag=True)
    optimizer: str = registered("adam", OPTIMIZERS, "a registered optimizer (its options with --set "
                                "optimizer_options.NAME=VALUE)", flag=True)
    optimizer_options: dict = mapping("the optimizer's options (e.g. betas, weight_decay): --set "
                                      "optimizer_options.NAME=VALUE", what="a mapping of options")
    normalized_gradients: bool = boolean(False, "normalize each parameter's gradient before the optimizer's "
                                         "step (as in the paper)", flag=True)
    plateau_epochs: int = integer(0, "k: stop improving = the best validation objective of the last k epochs "
                                  "is less than --plateau-nats below the best before them (KL-annealing "
                                  "epochs not counted); ends training (or starts the plateau schedule's "
                                  "decay); 0: off", low=0, flag=True)
    plateau_nats: float = number(0.5, "the improvement over --plateau-epochs epochs that still counts as "
                                 "progress (nats)", low=0, flag=True)
    decay_epochs: int = integer(0, "lr_schedule plateau: epochs of linear decay to 0 after the plateau (it "
                                "starts this many epochs before --epochs at the latest)", low=0, flag=True)
    seed: int = integer(0, "seed of the weights, the batches and the Monte Carlo draws", low=0, high=SEED_MAX,
                        flag=True)
    precision: str = choice("fp32", PRECISIONS, "fp32, bf16 or auto (bf16 where the device multiplies it "
                            "natively)", flag=True)
    device: str = string("auto", "auto (CUDA when present), cpu, cuda, cuda:N or mps",
                         what="auto, cpu, cuda, cuda:N or mps",
                         accept=lambda device: DEVICE_PATTERN.fullmatch(device) is not None, flag=True)
    eval_split: str = choice("valid", SPLITS, "the split evaluated after every epoch (the test split where "
                             "it is empty)")
    final_split: str = choice("test", SPLITS, "the split evaluated at the end, into summary.json")
    eval_batch_size: int = integer(1000, "examples per batch of the evaluations", low=1)
    iw_samples: int = integer(0, "importance samples for the IW-NLL in the final summary (0: skip)", low=0,
                              flag=True)
    skip_grad_norm: float = number(1e6, "skip updates whose gradient norm exceeds this", low=0, low_open=True)
    max_consecutive_skips: int = integer(50, "then stop with an error, the last good checkpoint kept", low=0)
    max_skipped_fraction: float = number(0.25, "a run that skipped more of its updates ends \"diverged\"",
                                         low=0, high=1)
    checkpoint_minutes: float = number(10.0, "also checkpoint mid-epoch this often", low=0)
    analytic_rate: bool = boolean(True, "the analytic KL where torch registers one, else Monte Carlo")
    multi_rate: bool = boolean(False, "Multi-Rate VAE: one run learns every beta in [--beta-min, --beta-max] "
                               "(a beta-conditioned family such as mr-mlp; evaluate with eval --betas)",
                               flag=True)
    beta_min: float = number(DEFAULT_BETA_RANGE[0], "multi-rate: lower end of the beta range", flag=True)
    beta_max: float = number(DEFAULT_BETA_RANGE[1], "multi-rate: upper end of the beta range", flag=True)
    objective: str | None = registered(None, OBJECTIVES, "a registered objective (`rdvae list objectives`; "
                                       "its options with --set objective_options.NAME=VALUE)", optional=True,
                                       flag=True, shown_default="from the fields set: multi-rate, "
                                       "target-rate, free-bits, else beta")
    objective_options: dict = mapping("the objective's options that are not config fields: --set "
                                      "objective_options.NAME=VALUE", what="a mapping of options")
    data: dict = mapping("the dataset loader's options (file data: fractions, ...): --set data.NAME=VALUE",
                         what="a mapping of options")
    allow_improper_likelihood: bool = boolean(False, "train even where the decoder's support misses the data")
    dataset_sha256: str | None = string(None, "recorded: the data file's SHA-256, verified on eval and "
                                        "resume", optional=True)
    plugins: list = list_of("modules or .py files that register what the run uses (config.json: files "
                            "relative to the run folder)", items="string",
                            what="a list of modules or .py files")
    plugin_fingerprints: dict = mapping("recorded: module name -> the plugin's SHA-256 (and distribution), "
                                        "verified on eval and resume", what="a mapping of module names")
    log: list = list_of("trackers besides metrics.jsonl: tensorboard, mlflow, wandb or a registered logger "
                        "(rdvae.register_logger)", items="string", what="a list of tracker names")
    log_options: dict = mapping("the trackers' options (mlflow_uri, wandb_project, ...)",
                                what="a mapping of tracker options")
    log_every_steps: int = integer(10, "trackers get the training loss, R and D every this many steps", low=1)
    log_figures_every: int = integer(5, "trackers get reconstruction and sample grids every this many epochs "
                                     "(and after the last); 0: never", low=0)
    log_tags: dict = mapping("tags / params the trackers attach (a sweep: the swept fields)",
                             what="a mapping of tag names to values")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, data_given: bool = False) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a mapping of fields, got {type(data).__name__}")
        if data.get("kind", "vae") != "vae":   # another plan's run (e.g. a GAN: rdvae.studies.gan_decoder)
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
        first (what they register may be named below) and records them by their canonical names; then
        each field against its declaration (kind, range, choices, registered names), then what depends
        on several fields. data_given: the caller passes a Dataset object, so the dataset name need not
        be registered."""
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        check_value("plugins", settings_of(self)["plugins"], self.plugins)
        self.plugins = load_plugins(self.plugins)
        check_fields(self)
        self.check_tracking()
        if self.lr_schedule == "plateau":
            need(self.plateau_epochs >= 1, "lr_schedule 'plateau' needs plateau_epochs >= 1 (the epochs over "
                 f"which the validation objective must stop improving), got {self.plateau_epochs!r}")
            need(self.decay_epochs < self.epochs, f"decay_epochs ({self.decay_epochs}) must be below epochs "
                 f"({self.epochs}), the cap that the decay must end by")
        else:
            need(self.decay_epochs == 0, f"decay_epochs={self.decay_epochs!r} is used only by lr_schedule "
                 f"'plateau' (got {self.lr_schedule!r}); drop it or use that schedule")
        OPTIMIZERS.check_values(self.optimizer, self.optimizer_options)
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
        check_fields(self, ("log", "log_options", "log_tags"))
        self.log = [LOGGERS.canonical(name) for name in self.log]
        for name in self.log:
            LOGGERS[name]   # unknown: a ConfigError listing the registered loggers
        if len(set(self.log)) != len(self.log):
            raise ConfigError(f"log names a tracker twice: {self.log!r}")
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


def config_field_rows() -> list[dict]:
    """One row per TrainConfig field for `rdvae list`: name, description (its help) and options (what it
    accepts, its default and its `rdvae train` flag)."""
    return field_rows(TrainConfig)


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

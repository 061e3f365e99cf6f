"""A training run's settings: one validated, serialisable record.

``scripts/train.py`` turns its flags into a ``RunConfig``; tests build one
directly. ``validate`` fails before any work with a one-line message naming
the setting, and ``incompatibilities`` says why a saved run cannot be resumed
with new settings.
"""

import dataclasses
import os

from tfmodels import data, distribute, models, optimizers
from tfmodels.run import backends
from tfmodels.errors import ConfigError

# Every vocabulary is declared once, by what implements it; the flags' choices derive from these.
DATASETS = tuple(data.DATASETS)
MODELS = models.MODEL_NAMES
ACTIVATIONS = models.HIDDEN_ACTIVATIONS
BACKENDS = tuple(backends.BACKENDS)
OPTIMIZERS = optimizers.OPTIMIZER_NAMES
DEVICES = distribute.DEVICES
STRATEGIES = distribute.STRATEGIES
DTYPES = ("float32", "float64")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}  # --jit_compile -> Trainer's argument
# A resumed run must agree on these, as they change the saved state's shape or
# meaning; the rest (epochs, batch size, device...) may change. A key missing
# from a saved run's settings counts as the field's default (runs saved before it existed).
RESUME_KEYS = ("dataset", "model", "model_file", "hidden_units", "activation", "dropout",
               "batchnorm", "weight_decay", "backend", "optimizer", "mixed_precision", "dtype")


def expand_path(path):
    """A path flag's value with ``~`` expanded, as a shell would have (None stays None)."""
    return os.path.expanduser(path) if path else path


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (the flags of scripts/train.py)."""

    dataset: str = "mnist"
    model: str = "mymodel"
    hidden_units: tuple = None  # None: the model's default sizes
    activation: str = "relu"
    dropout: float = 0.0  # the MLP options (models.MLP_OPTIONS) ...
    batchnorm: bool = False
    weight_decay: float = 0.0  # ... Keras's L2 factor on every kernel
    model_file: str = None  # a user's saved Keras model, trained instead of --model
    backend: str = "tensorflow"
    epochs: int = 10
    batch_size: int = 32
    shuffle_buffer: int = 1024
    optimizer: str = None  # None: the model file's compiled one, else "adam"
    learning_rate: float = None  # None: the optimizer's own default
    seed: int = 0
    data_dir: str = None  # None: $TFMODELS_DATA_DIR
    model_dir: str = None  # None: runs/<model>-<dataset>-<backend>
    device: str = "auto"
    dtype: str = "float32"
    mixed_precision: bool = False
    distribution_strategy: str = "off"
    jit_compile: str = "auto"  # the custom loop's speed options; they leave the model alone
    steps_per_execution: int = 100
    max_train_examples: int = None
    resume: bool = True

    def __post_init__(self):
        # Normalise so that equal settings compare (and serialise) equal.
        if self.model_file is not None:  # its own architecture replaces --model's
            object.__setattr__(self, "model_file", expand_path(self.model_file))
            for name, value in (("model", "model_file"), ("hidden_units", ()),
                                ("activation", None)):
                object.__setattr__(self, name, value)
        elif self.optimizer is None:
            object.__setattr__(self, "optimizer", "adam")
        kind = models.MODELS.get(self.model)
        units = ((kind.hidden_units if kind else ()) if self.hidden_units is None
                 else self.hidden_units)
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in units))
        if self.learning_rate is None and self.optimizer in optimizers.OPTIMIZERS:
            object.__setattr__(self, "learning_rate",
                               optimizers.default_learning_rate(self.optimizer))
        if self.model_dir is None:
            stem = (os.path.splitext(os.path.basename(self.model_file))[0]
                    if self.model_file else self.model)
            object.__setattr__(self, "model_dir", os.path.join(
                "runs", f"{stem}-{self.dataset}-{self.backend}"))
        for name in ("model_dir", "data_dir"):
            object.__setattr__(self, name, expand_path(getattr(self, name)))

    @property
    def input_shape(self):
        return data.DATASETS[self.dataset].input_shape

    @property
    def num_classes(self):
        return data.DATASETS[self.dataset].num_classes

    def validate(self):
        """Raises ConfigError with a one-line message on the first bad setting."""
        choices = {"dataset": DATASETS, "backend": BACKENDS, "device": DEVICES,
                   "distribution_strategy": STRATEGIES, "dtype": DTYPES,
                   "jit_compile": tuple(JIT_COMPILE)}
        if self.model_file is None:
            choices.update(model=MODELS, activation=ACTIVATIONS, optimizer=OPTIMIZERS)
        elif self.optimizer is not None:
            choices.update(optimizer=OPTIMIZERS)
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"--{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("epochs", "batch_size", "shuffle_buffer", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1; got {getattr(self, name)}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ConfigError(f"--max_train_examples must be >= 1; got {self.max_train_examples}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be > 0; got {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be a rate in [0, 1); got {self.dropout}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"--weight_decay must be >= 0; got {self.weight_decay}")
        if self.model_file is None:
            self._validate_model()
        elif self.dropout or self.batchnorm or self.weight_decay:
            raise ConfigError("--model_file brings its own architecture: it takes no "
                              "--dropout, --batchnorm or --weight_decay")
        if self.backend == "numpy" and (self.mixed_precision
                                        or self.distribution_strategy != "off"
                                        or self.device == "gpu"):
            raise ConfigError("--backend=numpy runs on the CPU: it takes no "
                              "--mixed_precision, --distribution_strategy or --device=gpu")
        if self.jit_compile == "on" and self.distribution_strategy != "off":
            raise ConfigError(f"--jit_compile=on does not go with --distribution_strategy="
                              f"{self.distribution_strategy} (XLA cannot reach a mirrored "
                              f"variable's copies); use --jit_compile=auto or off")
        if self.mixed_precision and self.dtype != "float32":
            raise ConfigError(f"--mixed_precision keeps float32 weights; it does not go with "
                              f"--dtype={self.dtype}")
        return self

    def _validate_model(self):
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ConfigError(f"--hidden_units must be positive integers; "
                              f"got {list(self.hidden_units)}")
        kind = models.MODELS[self.model]
        depth = kind.fixed_depth
        if depth is not None and len(self.hidden_units) != depth:
            raise ConfigError(f"--model={self.model} has exactly {depth} hidden "
                              f"layer{'s' * (depth > 1)}, so --hidden_units takes {depth} "
                              f"size{'s' * (depth > 1)}; got {list(self.hidden_units)}")
        given = [name for name in models.MLP_OPTIONS if getattr(self, name)]
        refused = [name for name in given if name not in kind.options]
        if refused:
            takers = [name for name, k in models.MODELS.items() if k.options]
            raise ConfigError(f"--{refused[0]} applies to --model={' or '.join(takers)}, "
                              f"not --model={self.model}")

    @property
    def trainer_jit_compile(self):
        """--jit_compile as `training.Trainer` takes it: True, False or "auto"."""
        return JIT_COMPILE[self.jit_compile]

    def model_options(self):
        """The MLP options as ``models.build_model`` takes them."""
        return {name: getattr(self, name) for name in models.MLP_OPTIONS}

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["hidden_units"] = list(self.hidden_units)
        return out

    @classmethod
    def from_dict(cls, values):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ConfigError(f"unknown run settings: {sorted(unknown)}")
        return cls(**values)

    def incompatibilities(self, saved):
        """Settings of the saved run (a dict) that this run may not change."""
        return state_differences(saved, self.to_dict(), "in the saved run", "now")


def state_differences(a, b, where_a, where_b):
    """How two settings dicts differ on RESUME_KEYS, e.g. ["--model='x' in the
    saved run, 'y' now"]; a missing key counts as RunConfig's default."""
    defaults = {field.name: field.default for field in dataclasses.fields(RunConfig)}
    return [f"--{key}={a.get(key, defaults[key])!r} {where_a}, "
            f"{b.get(key, defaults[key])!r} {where_b}"
            for key in RESUME_KEYS
            if key in defaults and a.get(key, defaults[key]) != b.get(key, defaults[key])]

"""A training run's settings: ``RunConfig``, one field per setting, each declared once.

A field is a setting: its name (the flag's), type and default, and in ``setting(...)``
its help text, choices or bound, whether it defines the run and how ``--model_file``
treats it. Everything else derives from the fields: ``scripts/train.py``'s absl flags
(``define_flags``), the ``RunConfig`` of a command line (``from_flags``), ``validate`` (one
line naming the setting, before any work; every float setting must also be finite,
``checks``, and those the computation holds as numbers a normal number of their dtype, or 0,
``COMPUTED_AS``), the default ``--model_dir``
(``default_model_dir``), the resume check (``changed_settings``, ``DEFINING``) and what
manifest.json and history.json record (``to_dict``). Choices come from
``tfmodels.catalog`` (models, activations, optimizers, backends, devices, strategies) and
``tfmodels.data.DATASETS``: neither imports TensorFlow or Keras, so neither does this
module, and a script's ``--help`` prints without loading them. (``validate`` loads Keras's
models for a kind that checks its sizes itself, the ViT.)

A setting that defines the run (``defines=True``) changes what the run computes: a resumed
run must keep it, and the default ``--model_dir`` names it when it is not the model's
default, so that runs of other such settings never share a directory. The others (the
epochs to reach, where the data is read from, the device, XLA, the strategy and the steps
per call) say how long and how the same computation runs; a later session may change them,
and manifest.json records each session's (``tfmodels.run.manifest``).
"""

import dataclasses
import hashlib
import math
import os
from typing import Callable, NamedTuple

from absl import flags
import numpy as np

from tfmodels import catalog, data, files
from tfmodels.errors import ConfigError

DTYPES = ("float32", "float64")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}  # --jit_compile -> Trainer's argument


class Check(NamedTuple):
    """What a setting's value must be: ``test(value)`` holds; ``text`` says so ("must be > 0")."""

    test: Callable
    text: str
    lower_bound: int = None  # an integer flag's own absl bound, checked when parsing
    flag_text: str = None  # if given, the flag runs ``test`` too when parsing, saying this


AT_LEAST_ONE = Check(lambda v: v >= 1, "must be >= 1", lower_bound=1)
# Every float setting passes FINITE first (``checks``): inf passes "> 0", nan fails it
# only to be called "not > 0", and neither is a value a run can train with.
FINITE = Check(math.isfinite, "must be a finite number", flag_text="must be a finite number")
SEED_LIMIT = 2 ** 32  # NumPy's and Keras's seeds are unsigned 32-bit integers
SEED = Check(lambda v: 0 <= v < SEED_LIMIT, "must be in [0, 2**32-1] (0 to 4294967295)",
             flag_text="must be in [0, 2**32-1] (0 to 4294967295)")
# An empty --model_dir would be the current folder: the run's files among the user's;
# an empty --data_dir the current folder too, not the default ($TFMODELS_DATA_DIR).
NAMED_FOLDER = Check(lambda v: v != "", "must name a folder (leave the flag out for the "
                     "default)", flag_text="must name a folder, not be empty (leave the flag "
                     "out for the default)")
POSITIVE = Check(lambda v: v > 0, "must be > 0", flag_text="must be > 0")
RATE = Check(lambda v: 0 <= v < 1, "must be a rate in [0, 1)")
NON_NEGATIVE = Check(lambda v: v >= 0, "must be >= 0")
DECAY = Check(lambda v: 0 < v <= 1, "must be in (0, 1]")
# isdecimal, not isdigit: "²" is a digit that int() refuses; "１２" (full-width) int() reads.
SIZES = Check(lambda v: len(v) > 0 and all(_whole(u) and int(u) > 0 for u in v),
              "must be positive integers", flag_text="must be positive integers, e.g. 512,512")
_NOT_REPLACED = object()
# The float settings the computation holds as a number of some dtype: a learning rate is
# float32 whatever --dtype (Keras makes a Python float a float32 tensor first, and the
# NumPy backend does as Keras), the others are of the run's --dtype. A nonzero value below
# that dtype's smallest normal number is 0 there (TensorFlow flushes subnormal numbers to
# zero), one above its largest infinite: neither is the value asked for (``_as_computed``).
# A dropout rate stays a Python float (the keep probability 1 - rate), so it is not here.
COMPUTED_AS = {"learning_rate": "float32", "weight_decay": None, "learning_rate_decay": None}


def _whole(value):
    """Whether ``value`` (an int, or a flag's string) is written in decimal digits only,
    as ``int()`` reads it."""
    return str(value).isdecimal()


def setting(default, help_text, *, choices=None, check=None, defines=False, model_option=False,
            with_model_file=_NOT_REPLACED, flag_default=None):
    """A ``RunConfig`` field: one setting.

    Args:
        default: its value when not given (None: decided from the others, see ``RunConfig``).
        help_text: the flag's help (a model option's gets the models taking it in front).
        choices: the values it takes (an enum flag).
        check: a ``Check`` its value passes (None is never checked).
        defines: it changes what the run computes: a resumed run must keep it, and the
            default --model_dir names it when it differs from the model's default.
        model_option: passed to ``models.build_model``; a model kind takes it if listed in
            its ``options``; ``--model_file`` takes none.
        with_model_file: the value it takes with ``--model_file``, whose architecture
            replaces it (the flag is then refused).
        flag_default: the flag's default, where it differs from the field's.
    """
    return dataclasses.field(default=default, metadata={
        "help": help_text, "choices": choices, "check": check, "defines": defines,
        "model_option": model_option, "with_model_file": with_model_file,
        "flag_default": default if flag_default is None else flag_default})


def expand_path(path):
    """A path flag's value with ``~`` expanded, as a shell would have (None stays None)."""
    return os.path.expanduser(path) if path else path


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (the flags of scripts/train.py)."""

    dataset: str = setting("mnist", "Data set to train on.", choices=tuple(data.DATASETS),
                           defines=True)
    model: str = setting("mymodel", "; ".join(
        f"{name}: {kind.description}" for name, kind in catalog.MODEL_INFO.items()) + ".",
        choices=catalog.MODEL_NAMES, defines=True, with_model_file="model_file")
    model_file: str = setting(
        None, "A saved Keras model (.keras, or a legacy .h5; loaded in safe mode) to train "
        "instead of --model, "
        "with its compiled loss and optimizer if it has them (--optimizer/--learning_rate "
        "override the latter). The run keeps a copy (model_file.keras in --model_dir): "
        "resuming compares the file's content with it, and evaluate.py builds from it.")
    hidden_units: tuple = setting(  # None: the model's default sizes
        None, "Hidden layer sizes, e.g. 512,512; default: the model's own.", check=SIZES,
        defines=True, with_model_file=())
    activation: str = setting(  # None: the model's default (relu; lstm: tanh; vit: gelu)
        None, "Hidden activation (an LSTM's cell activation, a Transformer MLP's); default: "
        "the model's own (" + ", ".join(f"{name}: {kind.activation}" for name, kind
                                        in catalog.MODEL_INFO.items()) + ").",
        choices=catalog.HIDDEN_ACTIVATIONS, defines=True, with_model_file=None)
    dropout: float = setting(0.0, "a Dropout of this rate after every hidden layer (vit: "
                             "on the attention weights and after each MLP Dense).",
                             check=RATE, defines=True, model_option=True)
    batchnorm: bool = setting(False, "BatchNormalization between each hidden Dense and its "
                              "activation.", defines=True, model_option=True)
    weight_decay: float = setting(
        0.0, "Keras's L2 penalty, this factor times the sum of every squared kernel weight "
        "(the book's weight_decay_lambda is twice it).", check=NON_NEGATIVE, defines=True,
        model_option=True)
    backend: str = setting(
        "tensorflow", "tensorflow: Keras custom loop; numpy: the model's numpy_ref twin, from "
        "the same initial weights, on the same batches.", choices=catalog.BACKEND_NAMES,
        defines=True)
    epochs: int = setting(10, "Epochs to train (in total, when resuming).", check=AT_LEAST_ONE)
    batch_size: int = setting(32, "Global mini-batch size.", check=AT_LEAST_ONE, defines=True)
    shuffle_buffer: int = setting(1024, "Shuffle buffer (examples).", check=AT_LEAST_ONE,
                                  defines=True)
    optimizer: str = setting(  # None: the model file's compiled one, else the default
        None, "Optimizer: " + ", ".join(f"{name}: {info.describe()}"
                                        for name, info in catalog.OPTIMIZER_INFO.items())
        + ". With --model_file, default: the file's compiled optimizer.",
        choices=catalog.OPTIMIZER_NAMES, defines=True,
        flag_default=catalog.DEFAULT_OPTIMIZER)
    learning_rate: float = setting(  # None: the optimizer's own default
        None, "Learning rate; default: the optimizer's Keras default.", check=POSITIVE,
        defines=True)
    learning_rate_decay: float = setting(
        1.0, "After every epoch the learning rate is multiplied by this (Keras's "
        "ExponentialDecay, staircase, one epoch of steps; the NumPy backend steps with its "
        "twin); 1 keeps it constant.", check=DECAY, defines=True)
    seed: int = setting(0, "Seeds the initial weights and the shuffling; 0 to 2**32-1.",
                        check=SEED, defines=True)
    data_dir: str = setting(None, "Data directory; default $TFMODELS_DATA_DIR.",
                            check=NAMED_FOLDER)
    model_dir: str = setting(
        None, "Output directory; default: runs/<model>-<dataset>-<backend>, followed by each "
        "setting that defines the run and differs from the model's default, e.g. "
        "runs/mymodel-mnist-numpy-dtype=float64 (a --model_file's name and content hash "
        "stand for the model).", check=NAMED_FOLDER)
    device: str = setting("auto", "gpu fails when no GPU is visible; cpu hides GPUs.",
                          choices=catalog.DEVICES)
    mixed_precision: bool = setting(False, "mixed_float16 compute with float32 softmax and "
                                    "loss scaling.", defines=True)
    dtype: str = setting("float32", "Weights, losses and metrics in this dtype, on either "
                         "backend; float64 makes the two backends agree to rounding.",
                         choices=DTYPES, defines=True)
    distribution_strategy: str = setting("off", "tf.distribute strategy for the custom loop.",
                                         choices=catalog.STRATEGIES)
    jit_compile: str = setting(
        "auto", "--backend=tensorflow: compile the train and test steps with XLA. auto: on for "
        "a float32 stack of Dense layers at --batch_size below 512 without --mixed_precision "
        "or --distribution_strategy, where it was measured faster (1.4x at batch 32 on one "
        "core); off at larger batches (0.95x at 1024), for convolutions, dropout and batch "
        "normalization (measured several times slower) and for float64 parity runs (their "
        "op-for-op graph); on is refused with a strategy.", choices=tuple(JIT_COMPILE))
    steps_per_execution: int = setting(
        100, "--backend=tensorflow: training steps per call of one tf.function that reads the "
        "batches in the graph (as Keras's steps_per_execution); every step's loss is still "
        "checked and shown. 1: one call per step. Larger saves Python dispatch; Ctrl-C and the "
        "progress bar wait for the running call.", check=AT_LEAST_ONE)
    max_train_examples: int = setting(None, "Train on the first N examples only.",
                                      check=AT_LEAST_ONE, defines=True)
    resume: bool = setting(True, "Continue a run found in --model_dir; --noresume starts anew.")

    def __post_init__(self):
        # Normalise so that equal settings compare (and serialise) equal.
        if self.model_file is not None:  # its own architecture replaces --model's
            self._set("model_file", expand_path(self.model_file))
            for field in REPLACED:
                self._set(field.name, field.metadata["with_model_file"])
        elif self.optimizer is None:
            self._set("optimizer", catalog.DEFAULT_OPTIMIZER)
        kind = catalog.MODEL_INFO.get(self.model)
        units = ((kind.hidden_units if kind else ()) if self.hidden_units is None
                 else self.hidden_units)
        # What is not a whole number is kept as given, for ``validate`` to name it.
        self._set("hidden_units", tuple(int(u) if _whole(u) else u for u in units))
        if self.activation is None and self.model_file is None:
            self._set("activation", kind.activation if kind else "relu")
        if self.learning_rate is None and self.optimizer in catalog.OPTIMIZER_INFO:
            self._set("learning_rate", catalog.OPTIMIZER_INFO[self.optimizer].learning_rate)
        if self.model_dir is None:
            self._set("model_dir", default_model_dir(self))
        for name in ("model_dir", "data_dir"):
            self._set(name, expand_path(getattr(self, name)))

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    @property
    def input_shape(self):
        return data.DATASETS[self.dataset].input_shape

    @property
    def num_classes(self):
        return data.DATASETS[self.dataset].num_classes

    @property
    def trainer_jit_compile(self):
        """--jit_compile as `training.Trainer` takes it: True, False or "auto"."""
        return JIT_COMPILE[self.jit_compile]

    def model_options(self):
        """The model options as ``models.build_model`` takes them."""
        return {name: getattr(self, name) for name in MODEL_OPTIONS}

    def validate(self):
        """Raises ConfigError with a one-line message on the first bad setting."""
        for field in dataclasses.fields(self):
            if self.model_file is None or field not in REPLACED:
                _check(field, getattr(self, field.name))
        for name, dtype in COMPUTED_AS.items():
            if getattr(self, name) is not None:
                _as_computed(FIELD[name], getattr(self, name), dtype or self.dtype)
        if self.model_file is None:
            self._validate_model()
        elif any(getattr(self, name) for name in MODEL_OPTIONS):
            flags_ = [f"--{name}" for name in MODEL_OPTIONS]
            raise ConfigError("--model_file brings its own architecture: it takes no "
                              f"{', '.join(flags_[:-1])} or {flags_[-1]}")
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
        # Keras's models: the kind's own size check (check_units) lives beside its layers.
        from tfmodels import models  # pylint: disable=import-outside-toplevel
        kind = models.MODELS[self.model]
        depth = kind.fixed_depth
        if depth is not None and len(self.hidden_units) != depth:
            raise ConfigError(f"--model={self.model} has exactly {depth} hidden "
                              f"layer{'s' * (depth > 1)}, so --hidden_units takes {depth} "
                              f"size{'s' * (depth > 1)}; got {list(self.hidden_units)}")
        if kind.check_units is not None:
            try:
                kind.check_units(self.hidden_units)
            except ValueError as e:
                raise ConfigError(f"--model={self.model}: {e}") from None
        refused = [name for name in MODEL_OPTIONS
                   if getattr(self, name) and name not in kind.options]
        if refused:
            takers = " or ".join(_takers(refused[0]))
            raise ConfigError(f"--{refused[0]} applies to --model={takers}, "
                              f"not --model={self.model}")

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["hidden_units"] = list(self.hidden_units)
        return out

    @classmethod
    def from_dict(cls, values):
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown run settings: {sorted(unknown)}")
        return cls(**values)



FIELDS = dataclasses.fields(RunConfig)
FIELD = {field.name: field for field in FIELDS}
# The settings that define a run: a resumed run must keep them. A key missing from a saved
# run's settings counts as the field's default (runs saved before it existed).
DEFINING = tuple(f.name for f in FIELDS if f.metadata["defines"])
# The settings a later session may change (manifest.json records each session's): the
# epochs to reach, the data's folder, how the computation runs, and --model_file's path (its
# content the run directory compares with its copy). Where the run directory is, and
# whether to resume, say which run, not how it trains.
SESSION = tuple(f.name for f in FIELDS
                if not f.metadata["defines"] and f.name not in ("model_dir", "resume"))
MODEL_OPTIONS = tuple(f.name for f in FIELDS if f.metadata["model_option"])
REPLACED = tuple(f for f in FIELDS if f.metadata["with_model_file"] is not _NOT_REPLACED)
# The flags --model_file refuses: given with it, one of them would be silently ignored.
ARCHITECTURE = tuple(f.name for f in FIELDS if f in REPLACED or f.name in MODEL_OPTIONS)


def checks(field):
    """The ``Check``s a setting's value passes, in order: FINITE for every float setting,
    then the setting's own."""
    own = field.metadata["check"]
    return [*([FINITE] if field.type is float else []), *([own] if own is not None else [])]


def _check(field, value):
    """ConfigError naming the setting unless ``value`` is one of its choices and passes
    its checks."""
    choices = field.metadata["choices"]
    if value is None:
        return
    if choices is not None and value not in choices:
        raise ConfigError(f"--{field.name} must be one of {', '.join(choices)}; got {value!r}")
    for check in checks(field):
        if not check.test(value):
            shown = (list(value) if isinstance(value, tuple)
                     else repr(value) if isinstance(value, str) else value)
            raise ConfigError(f"--{field.name} {check.text}; got {shown}")


def _as_computed(field, value, dtype):
    """ConfigError naming the setting unless ``value`` (a finite float, already checked)
    is 0 or a normal number of ``dtype``, the dtype the computation holds it in
    (``COMPUTED_AS``): else the run would compute with 0 or infinity instead."""
    if not value:
        return
    info = np.finfo(dtype)
    smallest, largest = float(info.tiny), float(info.max)
    if smallest <= abs(value) <= largest:
        return
    why = (f"it is infinite as a {dtype} number" if abs(value) > largest
           else f"{dtype} holds it as a subnormal number or 0, which TensorFlow computes as 0")
    held = ("a learning rate is float32 whatever --dtype" if field.name == "learning_rate"
            else f"--dtype={dtype}")
    zero = "0 or " if all(check.test(0.0) for check in checks(field)) else ""
    raise ConfigError(f"--{field.name} must be {zero}a normal {dtype} number ({held}), of "
                      f"magnitude {smallest:.8g} to {largest:.8g}; got {value}: {why}")


def _takers(option):
    """The model kinds that take the model option ``option``."""
    return [name for name, kind in catalog.MODEL_INFO.items() if option in kind.options]


_DEFAULTS = {field.name: field.default for field in FIELDS}


def _differing(a, b, keys):
    """(key, a's value, b's value) for each of ``keys`` on which the settings dicts ``a``
    and ``b`` differ; a missing key counts as RunConfig's default."""
    values = ((key, a.get(key, _DEFAULTS[key]), b.get(key, _DEFAULTS[key])) for key in keys)
    return [(key, old, new) for key, old, new in values if old != new]


def state_differences(a, b, where_a, where_b):
    """How two settings dicts differ on the DEFINING settings, e.g. ["--model='x' in the
    saved run, 'y' now"]; a missing key counts as RunConfig's default."""
    return [f"--{key}={old!r} {where_a}, {new!r} {where_b}"
            for key, old, new in _differing(a, b, DEFINING)]


def changed_settings(old, new, keys=DEFINING):
    """Each of ``keys`` (default: the settings that define a run) on which the settings
    dicts ``old`` and ``new`` differ, as ``--key=old -> new``."""
    return [f"--{key}={before!r} -> {after!r}" for key, before, after in _differing(old, new, keys)]


def default_model_dir(config):
    """``runs/<model>-<dataset>-<backend>``, then a token per setting of ``config`` that
    defines the run and is not the model's default, e.g.
    ``runs/mymodel-mnist-tensorflow-hidden_units=512,512-dtype=float64``.

    Runs that differ in a defining setting thus never share a default directory, while a
    setting left at, or set to, its default adds nothing. With ``--model_file`` the file's
    name stands for the model, followed by the first 8 hex digits of its content's SHA-256
    (when the file can be read; else the run fails on it anyway). Past NAME_LIMIT
    characters of tokens, the rest become ``more-<8 hex digits of a hash of all>``.
    """
    stem = (os.path.splitext(os.path.basename(config.model_file))[0] if config.model_file
            else config.model)
    tokens = [_token(key, value) for key, value in _not_defaults(config)]
    digest = _content_digest(config.model_file)
    if digest:
        tokens.insert(0, digest[:8])
    if len("-".join(tokens)) > NAME_LIMIT:
        fingerprint = "more-" + hashlib.sha256("-".join(tokens).encode()).hexdigest()[:8]
        while len("-".join([*tokens, fingerprint])) > NAME_LIMIT:
            tokens.pop()
        tokens.append(fingerprint)
    return os.path.join("runs", "-".join([stem, config.dataset, config.backend, *tokens]))


NAME_LIMIT = 64  # characters of settings in a default --model_dir's name
_IN_STEM = ("model", "model_file", "dataset", "backend")  # named by the stem already


def _not_defaults(config):
    """(key, value) of each defining setting of ``config`` that is not the default of its
    model (for --learning_rate: of its optimizer), in field order."""
    given = dict(model=config.model, model_file=config.model_file, dataset=config.dataset,
                 backend=config.backend, model_dir="")
    plain = RunConfig(**given)
    tuned = RunConfig(**given, optimizer=config.optimizer)  # that optimizer's learning rate
    return [(key, getattr(config, key)) for key in DEFINING if key not in _IN_STEM
            and getattr(config, key) != getattr(plain if key == "optimizer" else tuned, key)]


def _token(key, value):
    """A setting in a directory name: ``key=value`` (a list comma-separated, a float as
    Python writes it), or ``key`` alone for a switch that is on."""
    if value is True:
        return key
    if isinstance(value, (tuple, list)):
        value = ",".join(map(str, value))
    return f"{key}={value}"


def _content_digest(path):
    """The SHA-256 of the file at ``path``, or None if there is none to read."""
    if not path:
        return None
    try:
        return files.sha256(path)
    except OSError:
        return None


def define_flags(flag_values=flags.FLAGS):
    """``scripts/train.py``'s flags: one per RunConfig field, with its help, choices and bound."""
    for field in FIELDS:
        name, meta, kind = field.name, field.metadata, field.type
        default, check = meta["flag_default"], meta["check"]
        help_text = meta["help"]
        if meta["model_option"]:
            help_text = f"{', '.join(_takers(name))}: {help_text}"
        common = {"flag_values": flag_values}
        if meta["choices"] is not None:
            flags.DEFINE_enum(name, default, meta["choices"], help_text, **common)
        elif kind is bool:
            flags.DEFINE_bool(name, default, help_text, **common)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text, lower_bound=check and check.lower_bound,
                                 **common)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text, **common)
        elif kind is tuple:
            flags.DEFINE_list(name, default, help_text, **common)
        else:
            flags.DEFINE_string(name, default, help_text, **common)
        for each in checks(field):
            if each.flag_text:
                flags.register_validator(name, lambda v, test=each.test: v is None or test(v),
                                         message=f"--{name} {each.flag_text}",
                                         flag_values=flag_values)


def from_flags(flag_values=flags.FLAGS):
    """The RunConfig of a parsed command line; a flag not given leaves the field's default."""
    given = {f.name: flag_values[f.name].value for f in FIELDS if flag_values[f.name].present}
    if given.get("model_file") is not None:
        dropped = [f"--{name}" for name in ARCHITECTURE if name in given]
        if dropped:
            raise ConfigError(f"--model_file brings its own architecture; drop "
                              f"{', '.join(dropped)}")
    return RunConfig(**given)

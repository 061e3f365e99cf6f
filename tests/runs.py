"""The small finished run that run-directory tests copy, and the flags that made it."""

from tfmodels.run.config import RunConfig

# A NumPy run of two epochs on the tiny digits of conftest's tiny_data_dir.
FLAGS = ("--backend=numpy", "--epochs=2", "--hidden_units=8", "--seed=1")


def config(model_dir, data_dir, **overrides):
    """The RunConfig of FLAGS (what train.py builds from them), with overrides."""
    settings = dict(backend="numpy", epochs=2, hidden_units=(8,), seed=1,
                    data_dir=str(data_dir), model_dir=str(model_dir))
    return RunConfig(**{**settings, **overrides})


def flags(model_dir, *extra):
    """FLAGS for --model_dir, then ``extra`` (a later flag overrides an earlier one)."""
    return [*FLAGS, f"--model_dir={model_dir}", *extra]

"""SHA-256 fingerprints of what the project computes: run it before and after a refactor.

    python scripts/fingerprints.py [--data_dir=DIR] [--output=FILE.json]

Each line names one computation and the hash of every array it produced, bit for bit:

- parity/*: a Keras model and its twin (``parity.twin``): outputs, loss, weight gradients
  and three steps of every twinned optimizer, for the project's models and a functional
  model with merges, in float32 and float64;
- numpy_ref/*: the book's networks trained by numpy_ref (``training.fit``, the book's
  ``Trainer`` and optimizers), seeded as the book seeds them;
- train/*: ``scripts/train.py``'s run (``experiment.run``) on both backends for one epoch
  of real MNIST images: the final weights and the history.

A behaviour-preserving change leaves every line as it was; ``--output`` writes the lines
as JSON so that two runs can be diffed.
"""

import hashlib
import json
import os
import pathlib
import sys
import tempfile

from absl import app, flags
import numpy as np

DATA_DIR = flags.DEFINE_string("data_dir", None, "MNIST directory; default $TFMODELS_DATA_DIR.")
OUTPUT = flags.DEFINE_string("output", None, "Also write the fingerprints to this JSON file.")


def digest(*values):
    """One hash of arrays, scalars, dicts (by sorted key) and lists, dtypes and shapes included."""
    h = hashlib.sha256()

    def feed(value):
        if isinstance(value, dict):
            for key in sorted(value):
                h.update(str(key).encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                feed(item)
        else:
            array = np.ascontiguousarray(value)
            h.update(f"{array.dtype.str}{array.shape}".encode())
            h.update(array.tobytes())

    for value in values:
        feed(value)
    return h.hexdigest()[:16]


def _mnist(data_dir, n_train, n_test):
    from tfmodels import data  # pylint: disable=import-outside-toplevel

    (x, y), (xt, yt) = data.load_mnist(data_dir)
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


def parity_fingerprints(data_dir):
    """The twin's numbers for the project's models, both dtypes, and every optimizer."""
    import keras  # pylint: disable=import-outside-toplevel
    from tfmodels import models, parity  # pylint: disable=import-outside-toplevel

    (x, y), _ = _mnist(data_dir, 16, 1)
    out = {}
    builds = {  # name -> (build(dtype), the shape of one input)
        "mymodel": (lambda dtype: models.build_model("mymodel", dtype=dtype,
                                                     input_shape=(28, 28)), (28, 28)),
        "two_layer_net+options": (lambda dtype: models.build_model(
            "two_layer_net", dtype=dtype, input_shape=(28, 28), dropout=0.2, batchnorm=True,
            weight_decay=1e-3), (28, 28)),
        "simple_convnet": (lambda dtype: models.build_model(
            "simple_convnet", dtype=dtype, input_shape=(28, 28, 1)), (28, 28, 1)),
        "merges": (_merge_model, (28, 28)),
    }
    optimizers = {name: lambda cls=cls, kw=kw: cls(**kw) for name, (cls, kw) in {
        "sgd": (keras.optimizers.SGD, {"learning_rate": 0.1}),
        "momentum": (keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
        "rmsprop": (keras.optimizers.RMSprop, {"centered": True, "momentum": 0.5}),
        "adagrad": (keras.optimizers.Adagrad, {}),
        "adam": (keras.optimizers.Adam, {"amsgrad": True}),
        "adamw": (keras.optimizers.AdamW, {"global_clipnorm": 1.0}),
        "adamax": (keras.optimizers.Adamax, {}),
        "nadam": (keras.optimizers.Nadam, {}),
        "lion": (keras.optimizers.Lion, {}),
        "adadelta": (keras.optimizers.Adadelta, {"learning_rate": 1.0}),
    }.items()}
    for dtype in ("float32", "float64"):
        images = (x / np.asarray(255, dtype)).astype(dtype)
        for name, (build, shape) in builds.items():
            keras.utils.set_random_seed(0)
            model = build(dtype)
            batch = images.reshape(len(images), *shape)
            net = parity.twin(model)
            loss, grads = net.loss_and_gradient(batch, y)
            out[f"parity/{name}/{dtype}/forward"] = digest(net.predict(batch))
            out[f"parity/{name}/{dtype}/loss+gradients"] = digest(loss, grads)
            for opt_name, make in optimizers.items():
                keras.utils.set_random_seed(0)
                model = build(dtype)
                keras_optimizer = make()
                keras_optimizer.build(model.trainable_variables)
                net = parity.twin(model)
                opt = parity.twin_optimizer(keras_optimizer, model.trainable_variables)
                for _ in range(3):
                    _, grads = net.loss_and_gradient(batch, y)
                    opt.update(net.params, grads)
                out[f"parity/{name}/{dtype}/{opt_name}x3"] = digest(dict(net.params.items()),
                                                                    opt.get_state())
    return out


def _merge_model(dtype):
    import keras  # pylint: disable=import-outside-toplevel

    inputs = keras.Input((28, 28), dtype=dtype)
    flat = keras.layers.Flatten(dtype=dtype)(inputs)
    a = keras.layers.Dense(16, activation="tanh", dtype=dtype)(flat)
    b = keras.layers.Dense(16, activation="gelu", dtype=dtype)(flat)
    merged = keras.layers.Concatenate(dtype=dtype)([keras.layers.Add(dtype=dtype)([a, b]), a])
    norm = keras.layers.LayerNormalization(dtype=dtype)(merged)
    outputs = keras.layers.Dense(10, activation="softmax", dtype=dtype)(norm)
    return keras.Model(inputs, outputs, name="merges")


def numpy_ref_fingerprints(data_dir):
    """The book's networks trained by numpy_ref, seeded as the book seeds them."""
    from numpy_ref import training  # pylint: disable=import-outside-toplevel
    from numpy_ref.network import networks  # pylint: disable=import-outside-toplevel
    from numpy_ref.book import multi_layer_net_extend, simple_convnet  # pylint: disable=import-outside-toplevel
    from numpy_ref.book import optimizer as book_optimizer  # pylint: disable=import-outside-toplevel
    from numpy_ref.book import trainer as book_trainer  # pylint: disable=import-outside-toplevel
    optim = _numpy_optimizers()

    (x, y), (xt, yt) = _mnist(data_dir, 2000, 500)
    flat_x = (x.reshape(len(x), -1) / 255.0).astype(np.float32)
    flat_xt = (xt.reshape(len(xt), -1) / 255.0).astype(np.float32)
    out = {}
    net = networks.TwoLayerNet(784, 50, 10, seed=0)
    history = training.fit(net, optim.SGD(learning_rate=0.1), (flat_x, y), (flat_xt, yt),
                           epochs=2, batch_size=100, seed=0)
    out["numpy_ref/TwoLayerNet/sgd/fit"] = digest(dict(net.params.items()), history)
    for name in ("Adam", "RMSprop", "Nadam"):
        net = networks.MultiLayerNet(784, [32, 64], 10, seed=1, dtype=np.float32)
        opt = getattr(optim, name)()
        history = training.fit(net, opt, (flat_x, y), (flat_xt, yt), epochs=1, batch_size=32,
                               seed=1)
        out[f"numpy_ref/MultiLayerNet/{name}/fit"] = digest(dict(net.params.items()),
                                                             opt.get_state(), history)
    np.random.seed(0)
    net = multi_layer_net_extend.MultiLayerNetExtend(
        784, [40, 30], 10, use_dropout=True, dropout_ration=0.1, use_batchnorm=True,
        weight_decay_lambda=0.01)
    opt = book_optimizer.Adam(lr=0.01)
    for step in range(20):
        batch = slice(step * 50, step * 50 + 50)
        grads = net.gradient(flat_x[batch].astype(np.float64), y[batch])
        opt.update(net.params, grads)
    out["numpy_ref/book/MultiLayerNetExtend/adam"] = digest(dict(net.params.items()))
    np.random.seed(0)
    images = (x[:300] / 255.0).reshape(300, 1, 28, 28)
    net = simple_convnet.SimpleConvNet()
    trainer = book_trainer.Trainer(net, images, y[:300], images[:100], y[:100], epochs=1,
                                   mini_batch_size=50, optimizer="Adam",
                                   optimizer_param={"lr": 0.001}, verbose=False)
    trainer.train()
    out["numpy_ref/book/SimpleConvNet/trainer"] = digest(dict(net.params.items()),
                                                         trainer.train_loss_list)
    return out


def _numpy_optimizers():
    """numpy_ref's Keras optimizers module, wherever this version keeps it."""
    try:
        from numpy_ref.optim import optimizers  # pylint: disable=import-outside-toplevel
    except ImportError:  # the layout before the optimizers moved to numpy_ref.optim
        from numpy_ref import optimizers  # pylint: disable=import-outside-toplevel
    return optimizers


def train_fingerprints(data_dir):
    """``scripts/train.py``'s run on both backends: final weights and history."""
    try:
        from numpy_ref.network.serialization import load_npz  # pylint: disable=import-outside-toplevel
    except ImportError:  # the layout before numpy_ref.network was a package
        from numpy_ref.serialization import load_npz  # pylint: disable=import-outside-toplevel
    from tfmodels.run import experiment  # pylint: disable=import-outside-toplevel

    datasets = _mnist(data_dir, 3000, 500)
    runs = {
        "mymodel/float32": {},
        "mymodel/float64": {"dtype": "float64"},
        "two_layer_net+options/float32": {"model": "two_layer_net", "dropout": 0.2,
                                          "batchnorm": True, "weight_decay": 1e-3,
                                          "optimizer": "momentum"},
        "simple_convnet/float32": {"model": "simple_convnet", "batch_size": 100},
    }
    out = {}
    for name, settings in runs.items():
        for backend in ("tensorflow", "numpy"):
            with tempfile.TemporaryDirectory() as tmp:
                config = _run_config(backend=backend, model_dir=tmp, epochs=1, seed=0,
                                     **settings)
                result = experiment.run(config, datasets_override=datasets)
                net, _ = load_npz(pathlib.Path(tmp) / "weights.npz")
                out[f"train/{name}/{backend}"] = digest(dict(net.params.items()),
                                                        dict(net.state.items()),
                                                        _history_numbers(result["epochs"]))
    return out


def _run_config(**settings):
    from tfmodels.run import config  # pylint: disable=import-outside-toplevel

    return config.RunConfig(**settings)


def _history_numbers(epochs):
    return [[entry[key] for key in sorted(entry)] for entry in epochs]


def main(argv):
    del argv
    data_dir = DATA_DIR.value or os.environ.get("TFMODELS_DATA_DIR")
    if not data_dir:
        sys.exit("fingerprints.py: error: --data_dir or $TFMODELS_DATA_DIR is needed")
    results = {}
    for part in (numpy_ref_fingerprints, parity_fingerprints, train_fingerprints):
        for key, value in part(data_dir).items():
            results[key] = value
            print(f"{key:60s} {value}", flush=True)
    if OUTPUT.value:
        pathlib.Path(OUTPUT.value).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)

"""Twins every ``keras.applications`` family (``weights=None``, its smallest input, float64)
and measures how well and how fast the twin runs.

    .venv/bin/python scripts/measure_applications.py                      # every model
    .venv/bin/python scripts/measure_applications.py --models=MobileNetV3Small,ConvNeXtTiny

Per model: the time to build the model and its twin; NumPy's forward+backward time
against Keras's (a ``tf.function`` of the same loss and gradients), both on one thread
(``--threads``); the largest relative difference (``max|numpy - keras| / max|keras|`` per
tensor) of the output (goal <= 1e-12) and of the weight gradients (goal <= 1e-10, the
largest over the weights) in inference mode; and ``parity.compare(...).ok`` in inference (batch
``--batch``) and in training mode (batch ``--training_batch``: batch normalization over
a 1x1 feature map with 2 samples is ill-conditioned, compare.py's docstring). Batch
normalization weights are drawn at random first (Keras's 1, 0, 0, 1 hide mistakes).
Writes ``--output`` (JSON) and prints a table; exits 1 when any model missed a goal.
"""

import json
import os
import pathlib
import sys
import time
import warnings

from absl import app, flags

THREADS = flags.DEFINE_integer("threads", 1, "Threads for NumPy's BLAS and for TensorFlow.",
                               lower_bound=1)
MODELS = flags.DEFINE_list("models", None, "Which applications (default: every one in MODELS).")
BATCH = flags.DEFINE_integer("batch", 2, "Batch size in inference mode and for the timings.",
                             lower_bound=1)
TRAINING_BATCH = flags.DEFINE_integer("training_batch", 4, "Batch size for compare(training=True)"
                                      "; 0 skips training mode.", lower_bound=0)
REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per side (the fastest counts).",
                               lower_bound=1)
OUTPUT = flags.DEFINE_string("output", "measure_applications.json", "Where the JSON goes.")

# name -> (smallest input side Keras accepts with weights=None, extra constructor arguments)
MODELS_ALL = {
    **{f"ConvNeXt{size}": (32, {}) for size in ("Tiny", "Small", "Base", "Large", "XLarge")},
    **{f"DenseNet{depth}": (32, {}) for depth in (121, 169, 201)},
    **{f"EfficientNetB{i}": (32, {}) for i in range(8)},
    **{f"EfficientNetV2{v}": (32, {}) for v in ("B0", "B1", "B2", "B3", "S", "M", "L")},
    "InceptionV3": (75, {}), "InceptionResNetV2": (75, {}),
    "MobileNet": (32, {}), "MobileNetV2": (32, {}),
    "MobileNetV3Small": (32, {"include_preprocessing": True}),
    "MobileNetV3Large": (32, {"include_preprocessing": True}),
    "NASNetMobile": (32, {}), "NASNetLarge": (32, {}),
    **{f"ResNet{depth}": (32, {}) for depth in (50, 101, 152)},
    **{f"ResNet{depth}V2": (32, {}) for depth in (50, 101, 152)},
    "VGG16": (32, {}), "VGG19": (32, {}), "Xception": (71, {}),
}
# Families whose model scales its input itself (built-in preprocessing): images in [0, 255].
PIXEL_INPUT = ("ConvNeXt", "EfficientNet", "MobileNetV3")
OUTPUT_GOAL, WEIGHT_GOAL = 1e-12, 1e-10


def build(name, batch, seed=0):
    """The float64 model (floatx and the dtype policy are float64 while it is built) and a
    batch for it."""
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import keras_twins  # pylint: disable=import-outside-toplevel
    side, kwargs = MODELS_ALL[name]
    # Both floatx and the dtype policy: Keras keeps the first policy it made from floatx.
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(seed)
        model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3),
                                                 **kwargs)
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])
    if {layer.compute_dtype for layer in model.layers} != {"float64"}:
        raise AssertionError(f"{name} was not built in float64")
    rng = np.random.default_rng(seed)
    keras_twins.randomise_batch_normalization(model, rng)
    return model, images(name, side, batch, rng)


def images(name, side, batch, rng):
    shape = (batch, side, side, 3)
    if name.startswith(PIXEL_INPUT):
        return rng.uniform(0, 255, shape)
    return rng.normal(size=shape)


def relative(numpy_value, keras_value):
    """max|numpy - keras| / max|keras| (inf where the twin has no such value or shape)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    if numpy_value is None or np.shape(numpy_value) != np.shape(keras_value):
        return float("inf")
    largest = float(np.max(np.abs(keras_value)))
    worst = float(np.max(np.abs(np.asarray(numpy_value) - keras_value)))
    return worst / largest if largest else worst


def keras_step(model, loss):
    """A ``tf.function``: the loss and its gradients with respect to the weights."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=False))
        return value, tape.gradient(value, model.trainable_variables)
    return step


def fastest(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import keras_twins  # pylint: disable=import-outside-toplevel
    from tfmodels import parity  # pylint: disable=import-outside-toplevel
    from tfmodels.parity import twins  # pylint: disable=import-outside-toplevel

    start = time.perf_counter()
    model, x = build(name, BATCH.value)
    result = {"model": name, "input": list(x.shape), "parameters": model.count_params(),
              "keras_build_s": time.perf_counter() - start}
    loss = keras_twins.mse("float64")
    start = time.perf_counter()
    try:
        net = twins.build(model, loss, input_grad=True).net
    except ValueError as error:
        return {**result, "refused": str(error).split(". Layers with a twin")[0]}
    result["twin_build_s"] = time.perf_counter() - start
    y = keras_twins.targets_like(net, x, np.random.default_rng(1))

    step = keras_step(model, loss)
    xt, yt = tf.constant(x), tf.constant(y)
    step(xt, yt)  # traced once, not timed
    result["keras_s"] = fastest(lambda: step(xt, yt), REPEATS.value)
    result["numpy_s"] = fastest(lambda: net.loss_and_gradient(x, y, training=False),
                                REPEATS.value)

    numpy_side = keras_twins.twin_side(net, x, y, training=False)
    keras_side = keras_twins.keras_side(model, x, y, loss, training=False)
    result.update(output=relative(numpy_side.output, keras_side.output),
                  weight_grads=max(relative(numpy_side.weight_grads.get(path), grad)
                                   for path, grad in keras_side.weight_grads.items()),
                  input_grads=relative(numpy_side.input_grads[0], keras_side.input_grads[0]))
    try:
        result["compare_inference_ok"] = parity.compare(model, x, y, loss, net=net).ok
        if TRAINING_BATCH.value:
            x_train = images(name, x.shape[1], TRAINING_BATCH.value, np.random.default_rng(2))
            y_train = keras_twins.targets_like(net, x_train, np.random.default_rng(3))
            report = parity.compare(model, x_train, y_train, loss, training=True, net=net)
            result["compare_training_ok"] = report.ok
            if not report.ok:
                result["training_first_divergence"] = report.first_divergence
    except Exception as error:  # pylint: disable=broad-except
        result["compare_error"] = f"{type(error).__name__}: {error}"  # reported, not hidden
        result["compare_inference_ok"] = False
    result["goals_met"] = (result["output"] <= OUTPUT_GOAL
                           and result["weight_grads"] <= WEIGHT_GOAL
                           and result["compare_inference_ok"]
                           and result.get("compare_training_ok", True))
    return result


def table(results):
    header = (f"{'model':<20} {'params':>7} {'twin s':>7} {'keras s':>8} {'numpy s':>8} "
              f"{'ratio':>6} {'output':>8} {'w grads':>8} {'inference':>9} {'training':>8}")
    lines = [header, "-" * len(header)]
    for r in results:
        if "refused" in r:
            lines.append(f"{r['model']:<20} refused: {r['refused']}")
            continue
        training = r.get("compare_training_ok")
        lines.append(
            f"{r['model']:<20} {r['parameters'] / 1e6:6.1f}M {r['twin_build_s']:7.1f} "
            f"{r['keras_s']:8.3f} {r['numpy_s']:8.3f} {r['numpy_s'] / r['keras_s']:6.1f} "
            f"{r['output']:8.1e} {r['weight_grads']:8.1e} {str(r['compare_inference_ok']):>9} "
            f"{'-' if training is None else str(training):>8}")
    return "\n".join(lines)


def main(argv):
    del argv  # unused
    names = MODELS.value or list(MODELS_ALL)
    unknown = [n for n in names if n not in MODELS_ALL]
    if unknown:
        raise app.UsageError(f"Unknown --models {unknown}; known: {', '.join(MODELS_ALL)}")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(THREADS.value)  # before NumPy loads its BLAS
    # keras_twins (the tests' helpers) is imported from tests/, as the tests do.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.threading.set_intra_op_parallelism_threads(THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS.value)
    warnings.simplefilter("ignore", UserWarning)
    results = []
    for name in names:
        results.append(measure(name))
        print(table(results[-1:]).splitlines()[-1], flush=True)
        pathlib.Path(OUTPUT.value).write_text(json.dumps(
            {"threads": THREADS.value, "batch": BATCH.value,
             "training_batch": TRAINING_BATCH.value, "results": results}, indent=2))
    print(table(results))
    return 0 if all(r.get("goals_met") for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    app.run(main)

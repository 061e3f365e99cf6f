"""The study notes' experiment: gradient descent on the DNN, numerical gradients vs backprop.

`DNN(depth, 32 neurons, 10 inputs, 2 outputs)`, sigmoid, float64, on a fixed random
regression batch, L = 1/2 mean((h - y)^2). One step is a gradient and `param -= lr * grad`.
The study notes timed 100 numerical steps at 48 s (depth 5) and 155 s (depth 10).

Cost model: a numerical gradient evaluates the loss twice per parameter. Re-running the
whole network each time costs 2 P t_loss (P parameters, t_loss one loss evaluation);
`Network.numerical_gradient` re-runs only the layers after the perturbed weight.
"""

import numpy as np

from numpy_ref.network import networks
from numpy_ref.optim import optimizers
from benchmarking import stats

STUDY_NOTES_SECONDS_PER_100_STEPS = {5: 48.0, 10: 155.0}


def _loss_seconds(net, x, t, calls):
    seconds = stats.interleaved({"loss": lambda _: [net.loss(x, t) for _ in range(calls)]},
                                repeats=5)["loss"]
    return stats.summary([s / calls for s in seconds])["median"]


def measure_depth(depth, x, t, repeats, backprop_steps, learning_rate=0.1, seed=0):
    """Seconds per gradient-descent step with each method, on twin networks."""
    num_in, num_out = x.shape[1], t.shape[1]
    nets = {m: networks.DNN(depth, 32, num_in, num_out, seed=seed)
            for m in ("numerical", "backprop")}
    sgd = {m: optimizers.SGD(learning_rate) for m in nets}
    check = nets["numerical"]  # both methods at the same point, before any step
    numerical, backprop = check.numerical_gradient(x, t), check.gradient(x, t)
    max_difference = max(float(np.max(np.abs(numerical[k] - backprop[k]))) for k in backprop)

    def numerical_step(_):
        sgd["numerical"].update(nets["numerical"].params,
                                nets["numerical"].numerical_gradient(x, t))

    def backprop_steps_(_):
        for _ in range(backprop_steps):
            sgd["backprop"].update(nets["backprop"].params, nets["backprop"].gradient(x, t))

    seconds = stats.interleaved({"numerical": numerical_step, "backprop": backprop_steps_},
                                repeats)
    per_step = {"numerical": stats.summary(seconds["numerical"]),
                "backprop": stats.summary([s / backprop_steps for s in seconds["backprop"]])}
    params = sum(p.size for p in check.params.values())
    loss_s = _loss_seconds(check, x, t, calls=50)
    return {
        "parameters": params,
        "affine_layers": depth + 1,
        "numerical": per_step["numerical"],
        "backprop": per_step["backprop"],
        "ratio": per_step["numerical"]["median"] / per_step["backprop"]["median"],
        "seconds_per_loss": loss_s,
        "full_rerun_estimate_s": 2 * params * loss_s,
        "max_abs_difference": max_difference,
        "numerical_100_steps_s": 100 * per_step["numerical"]["median"],
        "material_100_steps_s": STUDY_NOTES_SECONDS_PER_100_STEPS.get(depth),
    }


def measure(depths=(5, 10), batch=100, repeats=5, backprop_steps=100, seed=0):
    """`measure_depth` for each depth, and how the numerical cost grows between the first two.

    Returns:
        {"batch": ., "per_depth": {str(depth): {...}}, "growth": {...}}
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 10))  # (N, 10)
    t = rng.random((batch, 2))  # (N, 2) regression targets
    per_depth = {str(d): measure_depth(d, x, t, repeats, backprop_steps, seed=seed)
                 for d in depths}
    result = {"batch": batch, "dtype": "float64", "activation": "sigmoid",
              "per_depth": per_depth}
    if len(depths) >= 2:
        a, b = per_depth[str(depths[0])], per_depth[str(depths[1])]
        p_ratio = b["parameters"] / a["parameters"]
        result["growth"] = {
            "from_depth": depths[0], "to_depth": depths[1],
            "measured": b["numerical"]["median"] / a["numerical"]["median"],
            "backprop_measured": b["backprop"]["median"] / a["backprop"]["median"],
            # 2 P loss evaluations, each costing what the measured loss costs:
            "theory_2P_t_loss": p_ratio * b["seconds_per_loss"] / a["seconds_per_loss"],
            # ... if a loss evaluation cost as much as its multiply-adds (~P per example):
            "theory_P_squared": p_ratio ** 2,
            "parameters": p_ratio,
            "material": (STUDY_NOTES_SECONDS_PER_100_STEPS.get(depths[1], np.nan)
                         / STUDY_NOTES_SECONDS_PER_100_STEPS.get(depths[0], np.nan)),
        }
    return result

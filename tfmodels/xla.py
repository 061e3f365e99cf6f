"""When the custom loop compiles its steps with XLA: `jit_compile` True, False or "auto".

"auto" is XLA for a float32 stack of Dense layers without a strategy, below batch 512: there
XLA fuses the small element-wise ops of a step (the layers' and Adam's) and was measured
faster; other layers (dropout, batch norm, convolutions) and large batches were measured
slower. The measurements are in BENCHMARKS.md ("The XLA heuristic").
"""

JIT_COMPILE_CHOICES = (True, False, "auto")

# The layers "auto" compiles with XLA: a model made of these only (a Dense stack).
XLA_GAINS = ("Dense", "Flatten", "Reshape", "InputLayer", "Activation", "ReLU", "Softmax",
             "Identity")
XLA_MAX_BATCH = 512  # "auto" leaves XLA off from this batch size on


def resolve_jit_compile(jit_compile, model, strategy=None, batch_size=None):
    """`jit_compile` as a bool; "auto" is True for a float32 Dense stack without a strategy,
    at batches below `XLA_MAX_BATCH` when the batch size is given.

    Off for float64 (parity runs keep the graph the NumPy twin was matched against, op for
    op), mixed precision (not measured) and any strategy (XLA cannot reach a mirrored
    variable's copies on other devices: `Trainer` refuses True there).
    """
    if jit_compile not in JIT_COMPILE_CHOICES or not isinstance(jit_compile, (bool, str)):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'. "
                         f"Received: jit_compile={jit_compile!r}")
    if jit_compile != "auto":
        return jit_compile
    policy = model.dtype_policy
    # pylint: disable-next=protected-access
    layers = {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
    return (strategy is None and policy.variable_dtype == "float32"
            and policy.compute_dtype == "float32" and layers <= set(XLA_GAINS)
            and (batch_size is None or batch_size < XLA_MAX_BATCH))


__all__ = ["JIT_COMPILE_CHOICES", "XLA_GAINS", "XLA_MAX_BATCH", "resolve_jit_compile"]

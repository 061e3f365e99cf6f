"""`BENCHMARKS.md` from the results dict that `runner.run` also writes as JSON."""

import pathlib

SECTIONS = ("## Machine", "## Goals", "## 1. Training throughput",
            "## 2. Backprop against numerical gradients", "## 3. Input pipeline",
            "## 4. Convolution: the book's SimpleConvNet",
            "## 5. Recurrent: an LSTM over the rows of MNIST")
NOTES_FILE = pathlib.Path("benchmarks") / "notes.md"


def _n(value, digits=0):
    return f"{value:,.{digits}f}"


def _spread(s, digits=0):
    """'median (min-max)' of a `stats.summary`."""
    return f"{_n(s['median'], digits)} ({_n(s['min'], digits)}–{_n(s['max'], digits)})"


def _ratio(r):
    return f"**{r['ratio']:.2f}** ({r['min']:.2f}–{r['max']:.2f})"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(m):
    blas = m["blas"]
    env = ", ".join(f"`{k}={v}`" for k, v in m["environment"].items()) or "none set"
    v = m["versions"]
    rows = [
        ("CPU", f"{m['cpu']} ({m['cpu_family_model']}), {m['logical_cpus']} logical CPUs "
                f"({m['usable_cpus']} usable), {', '.join(m['simd'])}"),
        ("memory", f"{m['memory_gib']:.1f} GiB"),
        ("OS", m["os"]),
        ("software", f"Python {v['python']}, NumPy {v['numpy']}, SciPy {v['scipy']}, "
                     f"TensorFlow {v['tensorflow']}, Keras {v['keras']}"),
        ("BLAS (NumPy)", f"{blas.get('name')} {blas.get('version')}, kernel "
                         f"**{blas.get('kernel')}**, {blas.get('threads')} threads by default"),
        ("environment", env),
        ("load average at start", ", ".join(f"{x:.2f}" for x in m["load_average"] or ())),
        ("date", m["date"]),
    ]
    return _table(("", ""), rows)


def _holds(goal):
    return {True: "met", False: "**not met**", None: "not measured"}[goal["holds"]]


def _value(goal):
    if goal["value"] is None:
        return "–"
    return f"{goal['value']:.0f}" if goal["target"] > 100 else f"{goal['value']:.2f}"


def _goals(results):
    labels = list(results["goals"])
    first = results["goals"][labels[0]]
    header = ["goal", "target", *[f"measured ({label})" for label in labels], "verdict"]
    rows = []
    for i, g in enumerate(first):
        column = [results["goals"][label][i] for label in labels]
        rows.append((g["goal"], f"{g['comparison']} {g['target']:g}", *map(_value, column),
                     " / ".join(map(_holds, column))))
    note = (f"Judged on the first column ({labels[0]}); 'verdict' lists each column in turn. "
            "Ratios are of medians from the same interleaved repeats; \"custom loop\" is the "
            "faster of the two custom loops at that batch size (section 1 names it). Not "
            "measured: a variant failed or a peer is not installed (section 1 says which).")
    single = [*results.get("thread_goals", ()), results["convnet_goal"],
              *([results["lstm_goal"]] if "lstm_goal" in results else [])]
    single_table = _table(("goal", "target", "measured", "verdict",
                           "against the pinned 1-thread run (not judged)"), [
        (g["goal"], f"{g['comparison']} {g['target']:g}", _value(g), _holds(g),
         f"{g['pinned_run_ratio']:.2f}" if "pinned_run_ratio" in g else "–")
        for g in single])
    return (_table(header, rows) + "\n\n" + note + "\n\n" + single_table
            + "\n\nLibrary defaults: numpy_ref as a user gets it (`numpy_ref.training.fit` "
            "picks the BLAS threads: one, as no thread variable is set) against numpy_ref told "
            "`blas_threads=1`, interleaved in the library-defaults process (>= 1, less 0.05 "
            "for noise). The last column divides by the pinned 1-thread process's numpy_ref "
            "instead: that mostly measures the pinning (JAX and by-hand NumPy lose as much "
            "there, see section 1). SimpleConvNet: section 4, judged with the BLAS kernel "
            "OpenBLAS picks for this CPU. LSTM: section 5, against the faster custom loop.")


def _ratio_header(key, variants):
    names = {name: v["label"].removesuffix(" (peer)") for name, v in variants.items()}
    names["custom"] = "custom loop"
    names["peer"] = "fastest peer"
    return " / ".join(names.get(part, part) for part in key.split("/"))


def _variants_table(run):
    batches = list(run["ratios"])
    rows = []
    for name, v in run["variants"].items():
        eps = run["examples_per_s"].get(name)
        if eps is None:
            rows.append((v["label"], v["status"], *["–"] * (len(batches) + 1)))
            continue
        cells = [_spread(eps[b]) if b in eps else "–" for b in batches]
        cores = " / ".join(f"{run['cores_used'][name][b]['median']:.2f}" if b in eps else "–"
                           for b in batches)
        ceiling = " / ".join(f"{100 * run['gflops'][name][b]['fraction_of_ceiling']:.0f}%"
                             if b in eps else "–" for b in batches)
        label = v["label"] if v["status"] == "ok" else f"{v['label']} ({v['status']})"
        rows.append((label, *cells, cores, ceiling))
    header = ("variant", *[f"batch {b} (ex/s)" for b in batches],
              f"cores used ({' / '.join(batches)})", f"% of ceiling ({' / '.join(batches)})")
    return _table(header, rows)


def _ratios_table(run):
    keys = list(dict.fromkeys(k for ratios in run["ratios"].values() for k in ratios))
    def label(kind, batch):
        return run["variants"].get(run.get(kind, {}).get(batch), {}).get("label", "–")

    rows = [(batch, label("best_custom_loop", batch), label("fastest_peer", batch),
             *[_ratio(run["ratios"][batch][k]) if k in run["ratios"][batch] else "–"
               for k in keys]) for batch in run["ratios"]]
    return _table(("batch", "custom loop", "fastest peer",
                   *[_ratio_header(k, run["variants"]) for k in keys]), rows)


def _peer_accuracy(check, variants):
    rows = []
    for peer, r in check["peers"].items():
        label = variants[peer]["label"] if peer in variants else peer
        if "status" in r:
            rows.append((label, r["status"], "–", "–"))
        else:
            rows.append((label, f"{r['train_loss']:.4f} / {100 * r['train_accuracy']:.2f}%",
                         f"**{100 * r['test_accuracy']:.2f}%**", f"{r['seconds']:.1f} s"))
    data = (f"the whole {check['data']} training set ({_n(check['train_examples'])} images)"
            if check["full_training_set"] else
            f"the first {_n(check['train_examples'])} {check['data']} training images (the "
            "throughput subset)")
    return (f"**The peers learn.** Once per run, untimed: each peer trains "
            f"{check['epochs']} epochs at batch {check['batch_size']} on {data} and is "
            f"evaluated on {_n(check['test_examples'])} test images.\n\n"
            + _table(("peer", "last epoch: train loss / accuracy", "test accuracy",
                      "time (training + test)"), rows))


def _throughput(results, config):
    parts = []
    for label, run in results["throughput_runs"].items():
        gemm = run["gemm_gflops"]
        ceiling = max(gemm.values())
        pinned = ("" if run.get("pinned_cpu") is None else
                  f", pinned to CPU {run['pinned_cpu']} (every thread of the process)")
        parts.append(
            f"### {label}{pinned}\n\n{_variants_table(run)}\n\n{_ratios_table(run)}\n\n"
            f"Ceiling: one 2048 x 2048 float32 product, {ceiling:.1f} GFLOP/s (NumPy/OpenBLAS "
            f"{gemm['numpy']:.1f}, TensorFlow {gemm['tensorflow']:.1f}), measured in the same "
            f"process. A training example costs {_n(run['flops_per_example'])} flops (2 x "
            f"{_n(run['macs_per_example'])} multiply-adds: forward, kernel gradients, and input "
            f"gradients of every layer but the first), so the ceiling is "
            f"{_n(run['ceiling_examples_per_s'])} examples/s.")
    first = next(iter(results["throughput_runs"].values()))
    intro = (
        f"Mymodel (784-32-64-128-256-10, ReLU, softmax), float32, Adam, on the first "
        f"{_n(first['examples'])} {first['data']} training images (uint8 in memory, scaled "
        f"to [0, 1] per batch). One timed call is one epoch; the first epoch of each is an "
        f"untimed warm-up (tracing, compilation). Median of {config['throughput_repeats']} "
        "repeats in examples/s, with the range in brackets; all variants run in turn within "
        "each repeat (rotating order), in one process. Cores used: the process's CPU time "
        "over the wall time of each timed epoch (median). Ratios are of the medians, with "
        "the range of the per-repeat ratios. Keras `fit` and the tutorial-style custom loop "
        "(one call per step) read the same `make_dataset` pipeline; the custom loop as "
        "train.py runs it is `Trainer(..., steps_per_execution="
        f"{first.get('steps_per_execution')}, jit_compile=resolve_jit_compile('auto', ...))`"
        " (XLA below batch 512) over `OrderedBatches` in numpy_ref's order, gathered inside "
        "its compiled loop; numpy_ref runs "
        "`numpy_ref.training.fit` with `numpy_ref.optim.optimizers.Adam`; the peers (JAX: "
        "`jax.jit` of a whole step with `optax.adam`, one call per step, and at its best "
        "with one call per K steps, a `jax.lax.scan` of the step over batches gathered on "
        "the device, as our loop does; PyTorch: eager `nn.Sequential` with "
        "`torch.optim.Adam`, and `torch.compile` of the model and of Adam's step; all with "
        "Keras's Adam defaults) read numpy_ref's batches. \"fastest peer\" is the peer "
        "with the highest median at that batch size, the one the goals judge against. Each "
        "thread setting is a separate process: TensorFlow intra- and inter-op threads, "
        "`OPENBLAS_NUM_THREADS`, XLA's CPU threads (`XLA_FLAGS`) and PyTorch's threads set "
        "to the count, the 1-thread process pinned to one CPU; or everything left at the "
        "libraries' defaults, unpinned.")
    text = intro + "\n\n" + "\n\n".join(parts)
    if "peer_accuracy" in results:
        text += "\n\n" + _peer_accuracy(results["peer_accuracy"], first["variants"])
    return text


def _gradients(g):
    setup = g["setup"]
    depths = [d for d in g if d not in ("growth", "setup")]
    rows = []
    for d in depths:
        r = g[d]
        notes = r["material_100_steps_s"]  # the study notes' time (the key of older runs)
        rows.append((d, _n(r["parameters"]), _spread(r["numerical_spread"], 3),
                     f"{1e3 * r['backprop']:.3f}", f"{r['ratio']:,.0f}",
                     f"{r['numerical_100_steps_s']:.0f} s" + (f" ({notes:g} s)" if notes
                                                               else ""),
                     f"{r['max_abs_difference']:.1e}"))
    table = _table(("depth", "parameters", "numerical s/step", "backprop ms/step",
                    "numerical / backprop", "100 numerical steps (study notes)",
                    "max |numerical - backprop|"), rows)
    text = (f"`DNN(depth, 32 neurons, 10 inputs, 2 outputs)`, {setup['activation']}, "
            f"{setup['dtype']}, gradient descent on 1/2 mean((h - y)^2) over a fixed batch of "
            f"{setup['batch']} random samples; one step = one gradient + `param -= 0.1 * grad`. "
            "The two methods alternate within each repeat, on twin networks. The last column "
            "compares both gradients at the same point (central differences, h = 1e-4).\n\n"
            + table)
    growth = g.get("growth")
    if growth:
        text += "\n\n" + _growth(growth, g[str(growth["from_depth"])],
                                  g[str(growth["to_depth"])], setup["batch"])
    return text


def _growth(growth, ra, rb, batch):
    """The answer to the study notes' question: how the numerical cost grows with depth."""
    loss_ratio = rb["seconds_per_loss"] / ra["seconds_per_loss"]
    layer_ratio = rb["affine_layers"] / ra["affine_layers"]
    follows = ("the layer count" if abs(loss_ratio - layer_ratio)
               < abs(loss_ratio - growth["parameters"]) else "the multiply-adds")
    return (
        f"**How the numerical cost grows from depth {growth['from_depth']} to "
        f"{growth['to_depth']}.** A numerical gradient evaluates the loss twice per parameter, "
        f"so a step costs about 2 P t_loss. P grows {growth['parameters']:.2f}x "
        f"({_n(ra['parameters'])} -> {_n(rb['parameters'])}). One loss evaluation t_loss "
        f"grows {loss_ratio:.2f}x ({1e6 * ra['seconds_per_loss']:.0f} -> "
        f"{1e6 * rb['seconds_per_loss']:.0f} us), closer to {follows} "
        f"({ra['affine_layers']} -> {rb['affine_layers']} Affine layers: {layer_ratio:.2f}x; "
        f"multiply-adds: {growth['parameters']:.2f}x): at batch {batch} a small "
        "layer costs mostly NumPy call overhead. Theory, 2 P t_loss: "
        f"**{growth['theory_2P_t_loss']:.2f}x**; if t_loss were proportional to the "
        f"multiply-adds (~P), P^2: {growth['theory_P_squared']:.2f}x. Measured: "
        f"**{growth['measured']:.2f}x** (backprop, which costs about one forward and one "
        f"backward pass: {growth['backprop_measured']:.2f}x). The study notes measured "
        f"{growth['material']:.2f}x (48 s -> 155 s per 100 steps). "
        "`Network.numerical_gradient` re-runs only the layers after the perturbed weight, so "
        f"a step costs {ra['numerical']:.2f} s and {rb['numerical']:.2f} s here instead of the "
        f"{ra['full_rerun_estimate_s']:.2f} s and {rb['full_rerun_estimate_s']:.2f} s that "
        "re-running the whole network would take (2 P t_loss).")


def _pipeline(p, rss):
    stages = ", ".join(f"{k} {v:,.0f}" for k, v in rss["stages_mb"].items())
    rows = [
        ("write the `.mat` (not a goal)", f"{p['write_s']:.1f} s, {p['file_mb']:.0f} MB on disk"),
        ("`load_svhn_mat`", f"{_spread(p['load_s'], 2)} s"),
        (f"one pass of `make_dataset` (batch {p['batch_size']}, no training)",
         f"{_spread(p['examples_per_s_spread'])} examples/s"),
        (f"custom loop training on that pipeline ({p['threads']})",
         f"{_spread(p['train_examples_per_s_spread'])} examples/s"),
        ("pass / training", _ratio(p["pass_over_train"])),
        (f"peak RSS: load + {rss['steps']} training steps, fresh process",
         f"**{rss['peak_rss_mb']:,.0f} MB** (VmHWM after {stages})"),
    ]
    return (f"A `.mat` in Stanford's layout (`X` (32, 32, 3, {_n(p['images'])}) uint8, "
            "`y` (N, 1) labels 1..10, MATLAB 5, zlib-compressed like the real "
            f"`train_32x32.mat`), written to a temporary directory and deleted afterwards. The "
            f"uint8 images take {rss['dataset_mb']:,.0f} MB; a float32 copy would take 4x. "
            "MB = 10^6 bytes.\n\n" + _table(("measure", "median (range)"), rows))


def _convnet_row(model, label, run):
    eps = run["examples_per_s"]
    ms = 1e3 * run["batch_size"]
    return (model, f"`{label}`" if "=" in label else label, run["blas"].get("kernel"),
            _n(run["examples"]), _spread(eps["custom_loop"]), _spread(eps["numpy_ref"]),
            _ratio(run["ratio"]), f"{ms / eps['custom_loop']['median']:.1f} / "
            f"{ms / eps['numpy_ref']['median']:.1f}")


def _convnet(runs):
    rows = []
    for label, run in runs.items():
        rows.append(_convnet_row("SimpleConvNet", label, run))
        if "deep_convnet" in run:
            rows.append(_convnet_row("DeepConvNet", label, {"blas": run["blas"],
                                                             **run["deep_convnet"]}))
    first = next(iter(runs.values()))
    profile = first["profile"]
    prows = [(r["layer"], r["class"], f"{r['forward']:.2f}", f"{r['backward']:.2f}")
             for r in profile["layers"]]
    layers_total = sum(r["forward"] + r["backward"] for r in profile["layers"])
    ptable = _table(("layer", "class", "forward (ms)", "backward (ms)"), prows)
    return (
        "The book's ch07 network in Keras (channels_last): Conv2D(30, 5x5, ReLU) -> "
        "MaxPooling2D(2x2, stride 2) -> Flatten -> Dense(100, ReLU) -> Dense(10, softmax), "
        f"float32, Adam, batch {first['batch_size']}, on the first {_n(first['examples'])} "
        f"{first['data']} training images (28x28x1, uint8 in memory, scaled per batch). The "
        "custom loop (`tfmodels.training.fit`) trains the Keras model; numpy_ref trains "
        "its twin (`parity.twin`, `parity.twin_optimizer(Adam)`) with "
        "`numpy_ref.training.fit`, from the same initial weights. One thread: TensorFlow's "
        "intra- and inter-op threads and `OPENBLAS_NUM_THREADS` set to 1. One timed call is "
        "one epoch, the two variants interleaved; median (range) of "
        "repeats after a warm-up epoch. Each row is its own process: OpenBLAS with the "
        "kernel it picks for this CPU (`OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` "
        "removed from the worker's environment), and, when the environment forces a "
        "kernel, with that setting as well. DeepConvNet (the book's ch08 network, `--model=deep_convnet`: "
        "six 3x3 convolutions of 16 to 64 filters with ReLU, a max pool after every second, "
        "Dense(50, ReLU), Dropout(0.5), Dense(10), Dropout(0.5), softmax) is measured the same way on the "
        "first images only (a step costs about 40 SimpleConvNet steps).\n\n"
        + _table(("model", "OpenBLAS", "kernel", "images", "custom loop (ex/s)",
                  "numpy_ref (ex/s)", "numpy_ref / custom",
                  "ms per step (custom / numpy_ref)"), rows)
        + "\n\nWhere a numpy_ref step goes (first row's setting; median of repeated calls "
        "on one batch, each layer alone, so caches are warmer than in training: the layers "
        f"add up to {layers_total:.1f} ms, a whole step takes {profile['step_ms']:.1f} ms):"
        "\n\n" + ptable)


def _lstm(run):
    names = {name: v["label"].removesuffix(" (peer)") for name, v in run["variants"].items()}
    names["custom"] = "custom loop"
    names["peer"] = "fastest peer"
    rows = []
    for name, v in run["variants"].items():
        eps = run["examples_per_s"].get(name)
        label = v["label"] + (" (faster custom loop)" if name == run["best_custom_loop"] else "")
        if eps is None:
            rows.append((label, v["status"], "–"))
        else:
            rows.append((label, _spread(eps), f"{1e3 * run['batch_size'] / eps['median']:.1f}"))
    ratios = _table(("ratio", "median (per-repeat range)"), [
        (" / ".join(names.get(part, part) for part in key.split("/")), _ratio(r))
        for key, r in run["ratios"].items()])
    text = (
        "`tfmodels.models.build_model(\"lstm\", input_shape=(28, 28))`, as `scripts/train.py "
        "--model=lstm` builds it: each image read as 28 steps of 28 pixels by LSTM(128) (tanh, "
        "sigmoid gates), Dense(10) softmax on the last output; float32, Adam, batch "
        f"{run['batch_size']}, on the first {_n(run['examples'])} {run['data']} training images "
        "(uint8 in memory, scaled per batch). Every variant starts from the same weights. The "
        "custom loop as train.py runs it is `Trainer(..., steps_per_execution="
        f"{run['steps_per_execution']}, jit_compile={run['jit_compile']})` over "
        "`OrderedBatches` (`--jit_compile=auto` leaves XLA off for an LSTM); numpy_ref trains "
        "the twin (`parity.twin`, `parity.twin_optimizer(Adam)`) with `numpy_ref.training.fit`;"
        " the peers are a `lax.scan` LSTM in one `jax.jit` step with `optax.adam`, and eager "
        "`nn.LSTM` + `nn.Linear` with `torch.optim.Adam`, Keras's initialisers and Adam "
        "defaults, reading numpy_ref's batches. One process, one thread per library, pinned "
        "to one CPU; one timed call is one epoch, the variants interleaved; median (range) of "
        f"{run['repeats']} repeats after a warm-up epoch.\n\n"
        + _table(("variant", "examples/s", "ms per step"), rows) + "\n\n" + ratios)
    for peer, r in run.get("peer_results", {}).items():
        text += (f"\n\n{names[peer]}'s last timed epoch: train loss {r['train_loss']:.4f}, "
                 f"accuracy {100 * r['train_accuracy']:.2f}% (it learns).")
    profile = run.get("profile")
    if profile:
        phases = "; ".join(f"{k} {100 * v:.0f}%" for k, v in profile["phases"].items())
        text += (
            f"\n\nWhere a numpy_ref step goes: cProfile of {profile['steps']} training steps "
            f"({profile['ms_per_step']:.1f} ms per step under the profiler). With their "
            f"callees: {phases}. Own time, the top functions:\n\n"
            + _table(("function", "calls per step", "ms per step", "share"), [
                (f"`{f['function']}`", f"{f['calls_per_step']:.0f}", f"{f['ms_per_step']:.2f}",
                 f"{100 * f['share']:.0f}%") for f in profile["functions"]]))
    return text


def render(results, notes=None):
    """The whole report as Markdown."""
    quick = ("\n> **Quick mode**: small sizes, to check the benchmark runs. Do not quote these "
             "figures.\n" if results["quick"] else "")
    header = (
        "# Benchmarks\n\nWritten by `scripts/bench.py` (flags: `--quick`, `--output_dir`, "
        "`--data_dir`); the raw figures are in `benchmarks/latest.json`. Performance goals "
        "are measured here, side by side in one run, never as timed unit tests. This run "
        f"took {results['elapsed_s'] / 60:.1f} min.\n" + quick)
    body = [header,
            SECTIONS[0] + "\n\n" + _machine(results["machine"]),
            SECTIONS[1] + "\n\n" + _goals(results),
            SECTIONS[2] + "\n\n" + _throughput(results, results["config"]),
            SECTIONS[3] + "\n\n" + _gradients(results["gradients"]),
            SECTIONS[4] + "\n\n" + _pipeline(results["pipeline"], results["peak_rss"]),
            SECTIONS[5] + "\n\n" + _convnet(results["convnet"])]
    if "lstm" in results:
        body.append(SECTIONS[6] + "\n\n" + _lstm(results["lstm"]))
    if notes:
        body.append("## Notes\n\n" + notes.strip())
    return "\n\n".join(body) + "\n"

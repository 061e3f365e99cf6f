"""Side-by-side benchmarks of the Keras and the NumPy implementations.

`scripts/bench.py` calls `runner.run`, which measures four sections and writes
`BENCHMARKS.md` and `benchmarks/latest.json`:

- `throughput`: examples/s of Mymodel training (Keras `fit`, the custom loops, numpy_ref,
  and the JAX and PyTorch peers of `peers`, with their accuracy checked once);
- `gradients`: the study notes' DNN, numerical gradients against backprop;
- `pipeline`: a full-size SVHN `.mat`, its load time, `make_dataset` and peak memory;
- `convnet`: the book's SimpleConvNet, numpy_ref's twin against the custom loop.

Every figure is the median of repeats after a warm-up; the variants a ratio compares run
in the same process, interleaved, on the same data. Sections that import TensorFlow run
in child processes (`worker`), so that thread settings and peak memory are their own.
"""

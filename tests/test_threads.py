"""numpy_ref.training picks the BLAS thread count itself: one, unless the user chose."""

import numpy as np
import pytest
import threadpoolctl

from numpy_ref import training
from numpy_ref.network import networks
from numpy_ref.optim import optimizers
from numpy_ref.fast import threads


def _blas_threads():
    return {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"}


def _fit_seeing_threads(monkeypatch, env=None, **kwargs):
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    net = networks.TwoLayerNet(6, 5, 3, seed=0)
    seen = set()
    training.fit(net, optimizers.SGD(0.1), (x, t), epochs=1, batch_size=20,
                 step_callback=lambda *_: seen.update(_blas_threads()), **kwargs)
    return seen


@pytest.fixture(name="many_threads")
def _many_threads():
    """BLAS set to two threads around the test, so that 'one' is a visible choice."""
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != {2}:
            pytest.skip("this BLAS cannot be set to two threads")
        yield


def test_fit_runs_blas_on_one_thread_and_restores_it(monkeypatch, many_threads):
    del many_threads
    assert _fit_seeing_threads(monkeypatch) == {1}
    assert _blas_threads() == {2}


def test_the_environment_or_the_argument_decides_otherwise(monkeypatch, many_threads):
    del many_threads
    assert _fit_seeing_threads(monkeypatch, env={"OPENBLAS_NUM_THREADS": "2"}) == {2}
    assert _fit_seeing_threads(monkeypatch, blas_threads=None) == {2}
    assert _fit_seeing_threads(monkeypatch, env={"OMP_NUM_THREADS": "2"},
                               blas_threads=1) == {1}


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True])
def test_a_bad_thread_count_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="threads must be 'auto', None or a positive int"):
        threads.blas_threads(bad)

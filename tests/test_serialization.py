"""numpy_ref.network.serialization: .npz round trips, atomic writes, refusing bad files."""

import json

import numpy as np
import pytest

from numpy_ref import layers as L
from numpy_ref import losses
from numpy_ref.book import multi_layer_net
from numpy_ref.layers import core, piecewise, smooth
from numpy_ref.network import NETWORK_CLASSES, Network, layer_class, network_class
from numpy_ref.network import networks
from numpy_ref.optim import optimizers
from numpy_ref.network import serialization as S
from numpy_ref.network.serialization import NpzFileError

NETS = {
    "two_layer_net": lambda: networks.TwoLayerNet(6, 4, 3, seed=0, activation="tanh"),
    "multi_layer_net": lambda: networks.MultiLayerNet(6, [5, 4], 3, seed=1, dtype=np.float64),
    "dnn": lambda: networks.DNN(2, 4, 3, 2, seed=2),
}


@pytest.mark.parametrize("kind", NETS)
def test_round_trip_rebuilds_the_same_network(tmp_path, kind):
    net = NETS[kind]()
    S.save_npz(net, tmp_path / "w.npz", note=np.arange(3))
    loaded, extra = S.load_npz(tmp_path / "w.npz")
    assert type(loaded) is type(net) and loaded.config == net.config
    for key in net.params:
        np.testing.assert_array_equal(loaded.params[key], net.params[key])
        assert loaded.params[key].dtype == net.params[key].dtype
    np.testing.assert_array_equal(extra["note"], np.arange(3))
    x = np.random.default_rng(0).random((2, net.params["W1"].shape[0]))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


@pytest.mark.parametrize("old_key, new_class", [
    ("numpy_ref.networks.TwoLayerNet", networks.TwoLayerNet),
    ("numpy_ref.networks.MultiLayerNet", networks.MultiLayerNet),
    ("numpy_ref.network.Network", Network),
    ("numpy_ref.network.graph.Network", Network),
    ("numpy_ref.book.multi_layer_net.MultiLayerNet", multi_layer_net.MultiLayerNet),
])
def test_network_classes_saved_under_old_keys_still_resolve(old_key, new_class):
    assert network_class(old_key) is new_class


@pytest.mark.parametrize("old_key, new_class", [
    ("numpy_ref.core.Dense", core.Dense),
    ("numpy_ref.layers.Affine", L.Affine),
    ("numpy_ref.activations.ELU", piecewise.ELU),
    ("numpy_ref.layers.activations.GELU", smooth.GELU),
    ("numpy_ref.more_activations.HardTanh", piecewise.HardTanh),
    ("numpy_ref.layers.more_activations.Mish", smooth.Mish),
    ("numpy_ref.losses.SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
    ("numpy_ref.more_losses.Huber", losses.Huber),
    ("numpy_ref.losses.more_losses.KLDivergence", losses.KLDivergence),
])
def test_layer_classes_saved_under_old_keys_still_resolve(old_key, new_class):
    assert layer_class(old_key) is new_class


def test_numpy_ref_class_names_are_unique_so_a_name_finds_one_class():
    layer_class("numpy_ref.core.Dense")  # imports every numpy_ref module
    for classes in (L.LAYER_CLASSES, NETWORK_CLASSES):
        own = [cls for key, cls in classes.items() if key.startswith("numpy_ref.")]
        names = [cls.__name__ for cls in set(own)]
        assert len(names) == len(set(names)), sorted(names)


def test_optimizer_state_round_trip():
    net, opt = NETS["two_layer_net"](), optimizers.Adam()
    x, t = np.ones((2, 6), np.float32), np.array([0, 2])
    opt.update(net.params, net.gradient(x, t))
    restored = optimizers.Adam()
    restored.set_state(opt.get_state())
    assert restored.iterations == 1
    for slot, store in opt.state.items():
        for name, array in store.items():
            np.testing.assert_array_equal(restored.state[slot][name], array)


def _write_with_meta(path, change, arrays):
    """A file whose __network__ record is a real one, edited by ``change(meta)``."""
    net = NETS["two_layer_net"]()
    meta = {"format": S.FORMAT_VERSION, "class": "numpy_ref.networks.TwoLayerNet",
            "config": net.get_config()}
    change(meta)
    np.savez(path, __network__=np.array(json.dumps(meta)), **arrays)


def _weights():
    return {k: np.array(v) for k, v in NETS["two_layer_net"]().params.items()}


def _set(path, value):
    """A change that sets meta[path[0]][path[1]]... = value."""
    def change(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "not a readable .npz"),
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a readable .npz"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or
     p.with_suffix(".npy").rename(p), "single .npy array"),
    (lambda p: np.savez(p, W1=np.array([{"x": 1}], dtype=object)), "allow_pickle=False"),
    (lambda p: np.savez(p, W1=np.zeros((6, 4))), "__network__"),
    (lambda p: _write_with_meta(p, lambda m: None, {"W1": np.zeros((6, 4))}),
     "'b1' is missing"),
    (lambda p: _write_with_meta(p, _set(["class"], "os.system"), _weights()),
     "unknown network class 'os.system'"),
    (lambda p: _write_with_meta(p, _set(["config", "nodes", 0, "class"], "os.path.join"),
                                _weights()), "unknown layer class 'os.path.join'"),
    (lambda p: _write_with_meta(p, _set(["format"], 1), _weights()), "format 1, expected 2"),
    (lambda p: _write_with_meta(p, _set(["config", "nodes", 1, "config"], {"bad": 1}),
                                _weights()), "TypeError"),
    (lambda p: _write_with_meta(p, lambda m: None, {**_weights(), "W1": np.zeros((6,))}),
     "Affine needs W of shape"),
], ids=["empty", "truncated", "npy", "object_array", "no_meta", "missing", "unknown_network",
        "unknown_layer", "old_format", "bad_layer_config", "bad_shape"])
def test_bad_files_are_refused_with_the_file_named(tmp_path, make, message):
    path = tmp_path / "w.npz"
    make(path)
    with pytest.raises(NpzFileError, match=message) as info:
        S.load_npz(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(NpzFileError, match="no such file"):
        S.read_npz(tmp_path / "absent.npz")

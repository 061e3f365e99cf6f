"""The twins of Keras's recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN`` of their
cells (stacked too), ``Bidirectional``, ``TimeDistributed`` and ``ConvLSTM1D/2D/3D``:
``{keras class: builder}``.

A recurrent twin holds its cells' weights under the keys the twin checks
(``twins._keras_weights``): ``kernel``, ``recurrent_kernel``, ``bias`` for one cell, the
weight's path inside the layer where names repeat (``stacked_rnn_cells/lstm_cell/kernel``,
``forward_lstm/lstm_cell/kernel``). Refusals name the layer the user wrote.
"""

import keras

from numpy_ref.layers import activations, conv_lstm, recurrent, recurrent_cells, recurrent_wrappers
from tfmodels.parity import registry
from tfmodels.parity.layer_twins.noise import seed_of

_CELLS = "SimpleRNNCell, LSTMCell, GRUCell, or a StackedRNNCells of them"


def _keys(layer):
    """{id(variable): its key in the twin of ``layer``} (``twins._keras_weights``'s rule)."""
    from tfmodels.parity import twins  # twins imports the registry this package fills
    return {id(v): key for key, v in twins._keras_weights(layer).items()}


def cell_twin(cell, layer):
    """The ``recurrent_cells`` twin of one Keras cell; ``layer`` (the one the user wrote)
    is named in a refusal."""
    kind = type(cell)
    if kind not in (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell):
        raise registry.unsupported_error(
            layer, f"has the cell {cell.name!r} ({kind.__name__}), which has no NumPy twin "
                   f"(supported: {_CELLS})")
    weights = [registry.weights(cell.kernel), registry.weights(cell.recurrent_kernel),
               None if cell.bias is None else registry.weights(cell.bias)]
    activation = registry.twin_activation(cell.activation, layer)
    rates = dict(dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout)
    if kind is keras.layers.SimpleRNNCell:
        for option, rate in rates.items():
            if rate >= 1:  # Keras multiplies by a mask drawn at rate 1: 1 / (1 - 1)
                raise registry.no_option(layer, option, rate, "a rate below 1")
        return recurrent_cells.SimpleRNNCell(*weights, activation=activation, **rates)
    gated = dict(activation=activation, **rates,
                 recurrent_activation=registry.twin_activation(cell.recurrent_activation, layer),
                 per_gate_masks=cell.implementation == 1)
    if kind is keras.layers.LSTMCell:
        return recurrent_cells.LSTMCell(*weights, **gated)
    return recurrent_cells.GRUCell(*weights, reset_after=cell.reset_after, **gated)


def cells_of(layer):
    """The Keras cells an RNN loops, stacked ones in order."""
    cell = layer.cell
    if type(cell) is keras.layers.StackedRNNCells:
        return list(cell.cells)
    return [cell]


def rnn_twin(layer, *, named=None):
    """The ``recurrent.RNN`` twin of a Keras ``RNN`` (or ``SimpleRNN``/``LSTM``/``GRU``);
    ``named``: the layer a refusal names and whose weight keys the twin uses (a
    ``Bidirectional`` around this one), default ``layer``."""
    named = named or layer
    if layer.stateful:
        raise registry.no_option(named, "stateful", True, "False: each batch starts from "
                                 "zeros or the given initial_state")
    _check_unrolled_reverse(layer, named)
    if getattr(layer, "use_cudnn", "auto") is True:
        raise registry.no_option(named, "use_cudnn", True, "'auto' or False (on CPU Keras "
                                 "runs the loop the twin follows)")
    dtypes = {cell.compute_dtype for cell in [layer.cell, *cells_of(layer)]}
    if len(dtypes) > 1:
        raise registry.unsupported_error(
            named, f"steps through cells of several compute dtypes ({sorted(dtypes)}; a "
                   "StackedRNNCells has its own dtype, float32 unless given), and Keras rounds "
                   "each step's values to each; the twin supports one dtype for all its cells")
    keys = _keys(named)
    cells, prefixes = [], []
    for cell in cells_of(layer):
        twin = cell_twin(cell, named)
        key = keys[id(cell.kernel)]
        prefixes.append(key[:-len(cell.kernel.name)])
        cells.append(twin)
    return recurrent.RNN(cells, return_sequences=layer.return_sequences,
                         return_state=layer.return_state, go_backwards=layer.go_backwards,
                         zero_output_for_mask=layer.zero_output_for_mask, prefixes=prefixes,
                         seed=_seed(layer), output_dtype=layer.compute_dtype)


def _check_unrolled_reverse(layer, named):
    """Refuses the one combination where Keras's unrolled loop computes what its loop over
    time does not (and the twin follows the latter): with a mask, it zeroes the masked
    steps' outputs by the mask in forward time order while it lists the outputs in
    reverse (keras/src/backend/tensorflow/rnn.py). A Bidirectional turns on
    zero_output_for_mask and runs its backward layer with go_backwards."""
    if layer.unroll and layer.go_backwards and layer.zero_output_for_mask and \
            layer.return_sequences:
        raise registry.no_option(
            named, "unroll", True, "False with go_backwards, zero_output_for_mask and "
            "return_sequences: Keras's unrolled loop then zeroes the masked steps' outputs by "
            "the mask in forward time order while it lists the outputs in reverse")


def _seed(layer):
    """A seed for the masks the twin draws itself (the first cell's, if it has one)."""
    for cell in cells_of(layer):
        seed = seed_of(cell) if hasattr(cell, "seed") else None
        if seed is not None:
            return int(seed)
    return None


def bidirectional_twin(layer):
    for inner in (layer.forward_layer, layer.backward_layer):
        if not isinstance(inner, keras.layers.RNN):
            raise registry.unsupported_error(
                layer, f"wraps {inner.name!r} ({type(inner).__name__}), which has no NumPy "
                       "twin inside a Bidirectional (supported: SimpleRNN, LSTM, GRU, RNN)")
    return recurrent_wrappers.Bidirectional(rnn_twin(layer.forward_layer, named=layer),
                                            rnn_twin(layer.backward_layer, named=layer),
                                            merge_mode=layer.merge_mode,
                                            output_dtype=layer.compute_dtype)


def time_distributed_twin(layer):
    inner = layer.layer
    return recurrent_wrappers.TimeDistributed(registry.wrapped_twin(layer, inner),
                                              keys=_inner_keys(layer, inner),
                                              name=layer.name)


def _inner_keys(layer, inner):
    """{the TimeDistributed's key: the inner twin's key} for each weight."""
    outer, own = _keys(layer), _keys(inner)
    return {outer[i]: own[i] for i in outer}


def conv_lstm_twin(layer):
    """The ``conv_lstm.ConvLSTM`` twin of a Keras ``ConvLSTM1D``, ``ConvLSTM2D`` or
    ``ConvLSTM3D``."""
    cell = layer.cell
    if layer.stateful:
        raise registry.no_option(layer, "stateful", True, "False: each batch starts from "
                                 "zeros or the given initial_state")
    _check_unrolled_reverse(layer, layer)
    activation = registry.twin_activation(cell.activation, layer)
    recurrent_activation = registry.twin_activation(cell.recurrent_activation, layer)
    if cell.data_format == "channels_first":
        if cell.rank < 3:
            raise registry.no_option(
                layer, "data_format", "channels_first",
                "'channels_last'; 'channels_first' for ConvLSTM3D only: TensorFlow runs the "
                "1-D and 2-D convolutions channels_first on a GPU only (on CPU its Conv2D op "
                "refuses NCHW), so there is no Keras result to hold the twin against")
        for option, twin in (("activation", activation),
                             ("recurrent_activation", recurrent_activation)):
            if not _elementwise(twin):
                raise registry.no_option(
                    layer, option, _activation_name(twin),
                    "an activation of each value on its own with channels_first (Keras "
                    "applies this one along the last axis of (N, F, *S), an image axis)")
    weights = [registry.weights(cell.kernel), registry.weights(cell.recurrent_kernel),
               None if cell.bias is None else registry.weights(cell.bias)]
    twin_cell = conv_lstm.ConvLSTMCell(
        *weights, strides=cell.strides, padding=cell.padding, dilation_rate=cell.dilation_rate,
        activation=activation, recurrent_activation=recurrent_activation,
        dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout)
    return conv_lstm.ConvLSTM(twin_cell, return_sequences=layer.return_sequences,
                              return_state=layer.return_state, go_backwards=layer.go_backwards,
                              zero_output_for_mask=layer.zero_output_for_mask,
                              data_format=cell.data_format, seed=_seed(layer),
                              output_dtype=layer.compute_dtype)


def _elementwise(twin):
    """Whether an activation twin acts on each value on its own (not softmax-like)."""
    try:
        return activations.name_of(twin) not in ("softmax", "log_softmax")
    except ValueError:  # an activation given as a layer: no promise
        return False


def _activation_name(twin):
    try:
        return activations.name_of(twin)
    except ValueError:
        return type(twin).__name__


BUILDERS = {
    keras.layers.SimpleRNN: rnn_twin,
    keras.layers.LSTM: rnn_twin,
    keras.layers.GRU: rnn_twin,
    keras.layers.RNN: rnn_twin,
    keras.layers.Bidirectional: bidirectional_twin,
    keras.layers.TimeDistributed: time_distributed_twin,
    keras.layers.ConvLSTM1D: conv_lstm_twin,
    keras.layers.ConvLSTM2D: conv_lstm_twin,
    keras.layers.ConvLSTM3D: conv_lstm_twin,
}

__all__ = ["BUILDERS", "cell_twin", "conv_lstm_twin", "rnn_twin"]

"""Truth tables of the perceptron gates, including the two-layer XOR."""

import pytest

from numpy_ref import perceptron as P

INPUTS = [(0, 0), (1, 0), (0, 1), (1, 1)]
TRUTH_TABLES = {
    "AND": [0, 0, 0, 1],
    "NAND": [1, 1, 1, 0],
    "OR": [0, 1, 1, 1],
    "XOR": [0, 1, 1, 0],
}


@pytest.mark.parametrize("gate_name", list(TRUTH_TABLES))
def test_truth_table(gate_name):
    gate = getattr(P, gate_name)
    outputs = [gate(x1, x2) for x1, x2 in INPUTS]
    assert outputs == TRUTH_TABLES[gate_name]
    assert all(type(out) is int for out in outputs)


def test_xor_is_built_from_nand_or_and():
    for x1, x2 in INPUTS:
        assert P.XOR(x1, x2) == P.AND(P.NAND(x1, x2), P.OR(x1, x2))

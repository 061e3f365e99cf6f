"""Runs the random-model properties of test_twin_properties once outside pytest and
prints how many models they compared and the largest float64 differences.

    .venv/bin/python scripts/measure_twin_properties.py

The properties are derandomized, so these are the models the full test suite (`make
test`) runs; the fast tier (`make test-fast`) runs the first few of each.
"""

import os
import pathlib
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The properties are tests and their model builders test helpers (random_models,
# keras_twins): they live in tests/, which pytest puts on the path and this script must.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import test_twin_properties as properties  # noqa: E402  pylint: disable=wrong-import-position


def main():
    warnings.simplefilter("ignore", UserWarning)  # Keras's softmax-over-one-entry warning
    for test in (properties.test_random_sequential_models,
                 properties.test_random_functional_models,
                 properties.test_random_subclassed_models,
                 properties.test_random_models_with_batch_normalization_or_dropout):
        before = properties.TALLY.models
        test()
        print(f"{test.__name__}: {properties.TALLY.models - before} models")
    print(properties.TALLY)
    test = properties.test_random_sequence_models  # through parity.compare, both modes
    test()
    print(f"{test.__name__}: {properties.SEQUENCE_TALLY.models // 2} models, each compared "
          "in inference and in training mode")
    print(properties.SEQUENCE_TALLY)


if __name__ == "__main__":
    main()

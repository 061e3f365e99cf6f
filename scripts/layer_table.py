"""Prints the table of docs/layers.md of Keras layer classes: which have a NumPy twin, and why the
others are refused (``tfmodels.parity.coverage``).

    .venv/bin/python scripts/layer_table.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfmodels.parity import coverage  # noqa: E402  pylint: disable=wrong-import-position


def main():
    print(coverage.markdown_table())


if __name__ == "__main__":
    main()

# `make train` and `make test` each set up .venv on first use (and again when
# requirements.txt or pyproject.toml change), then reuse it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# GPU=1 (e.g. `make train GPU=1`): TensorFlow with CUDA (Linux, NVIDIA driver) instead of the
# CPU build; each variant has its own stamp, so switching reinstalls.
GPU ?=
TF_GPU := "tensorflow[and-cuda]>=2.21,<2.22"
STAMP := $(VENV)/.installed$(if $(GPU),-gpu,-cpu)

.PHONY: setup train test test-fast test-applications check-imports clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes $(if $(GPU),tensorflow-cpu,tensorflow) 2>/dev/null || true
	$(PY) -m pip install --quiet -r requirements.txt
	$(if $(GPU),$(PY) -m pip uninstall --quiet --yes tensorflow-cpu && $(PY) -m pip install --quiet $(TF_GPU))
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed*
	touch $(STAMP)

# The main job. Extra flags go through ARGS, e.g. `make train ARGS="--epochs=2"`.
train: $(STAMP)
	$(PY) scripts/train.py $(ARGS)

# Every test but the larger keras.applications variants: what CI runs (.ci/run). Extra
# pytest flags go through ARGS.
test: $(STAMP)
	$(PY) -m pytest -m "not applications" $(ARGS)

# The larger keras.applications variants twinned against Keras (about 8 minutes).
test-applications: $(STAMP)
	$(PY) -m pytest -m applications $(ARGS)

# The loop while editing (under 3 minutes on 2 cores): no subprocesses, no real-data
# training, a sample of the heaviest parametrisations and property examples
# (tests/conftest.py). Every module is still imported and run.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not integration" $(ARGS)

# The import graph of numpy_ref/, tfmodels/ and scripts/benchmarking/; fails on a cycle.
check-imports: $(STAMP)
	$(PY) scripts/check_imports.py $(ARGS)

clean-venv:
	rm -rf $(VENV)

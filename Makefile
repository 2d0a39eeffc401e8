# The README's two commands: `make demo` (main job end to end on the bundled
# sample) and `make test` (the test suite). Both create or reuse .venv here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The TensorFlow flavour to install: cpu (default, small wheel) or gpu (CUDA).
TF     ?= cpu
STAMP  := $(VENV)/.installed-$(TF)

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml imgen/VERSION
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# the export extra too (onnx, onnxruntime, tf2onnx, hls4ml), so that `make test` and CI run the
	@# export tests, which skip without it; and JAX (CPU), whose subset of the suite runs beside TensorFlow's
	$(PY) -m pip install --quiet -e ".[$(TF),jax,dev,export]"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(PY) -m pytest -n 2 --dist loadscope

clean:
	rm -rf $(VENV) demo_output .pytest_cache

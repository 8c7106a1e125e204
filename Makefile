# stfusion: `make demo` runs the main job on the built-in sample, `make test` runs the tests.
# Both install whatever is missing first (apt QGIS packages, .venv, the plugin profile).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup demo test weights benchmarks zip clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@source scripts/env.sh && $(PY) -m pytest

weights: setup
	@source scripts/env.sh && $(PY) scripts/train_default_weights.py

benchmarks: setup
	@source scripts/env.sh && $(PY) benchmarks/accuracy_real_data.py && $(PY) benchmarks/train_speed.py \
	  && $(PY) benchmarks/speed_memory.py --sizes 2000 4000 8000

zip:
	@$(PY) scripts/make_zip.py build/stfusion.zip

clean:
	rm -rf build demo_output .pytest_cache

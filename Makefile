# ecg-dicom: the two commands of the README.
#   make serve   install into .venv (first time) and start the service with its defaults
#   make test    install into .venv (first time) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
# A CPU-only host: `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the
# CPU wheels of the pinned torch first (PyPI's pull ~3.2 GB of CUDA libraries; docs/deploy.md).
TORCH_INDEX ?=

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(if $(TORCH_INDEX),$(VENV)/bin/pip install --index-url $(TORCH_INDEX) torch==2.14.1 torchvision==0.29.1)
	$(VENV)/bin/pip install -e '.[test]'
	touch $@

.PHONY: install serve test quick lint bench fuzz
install: $(VENV)/.installed

serve: install
	$(VENV)/bin/ecg-dicom serve

test: install
	$(VENV)/bin/python -m pytest

# A quicker loop while developing: no training, no Orthanc round trips, no lint.
quick: install
	$(VENV)/bin/python -m pytest -m "not slow and not e2e" --deselect tests/test_lint.py

lint: install
	$(VENV)/bin/python -m ruff check src tests bench scripts
	$(VENV)/bin/python -m mypy

bench: install
	PYTHONPATH=tests $(VENV)/bin/python bench/bench_scp.py
	$(VENV)/bin/python bench/bench_render.py
	$(VENV)/bin/python bench/bench_inference.py
	PYTHONPATH=tests $(VENV)/bin/python bench/bench_e2e.py
	PYTHONPATH=tests $(VENV)/bin/python bench/bench_viewer.py
	PYTHONPATH=tests $(VENV)/bin/python bench/bench_scale.py

# The on-demand fuzz run (issue 12, item 8): 10,000 mutants through the listener, 200
# through classify, 500 random PDUs; prints the figures (hours on a 2-core CPU).
FUZZ_ARGS ?= --count 10000
fuzz: install
	PYTHONPATH=tests $(VENV)/bin/python scripts/fuzz.py $(FUZZ_ARGS)

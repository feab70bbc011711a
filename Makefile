# ecg-dicom: the two commands of the README.
#   make serve   install into .venv (first time) and start the service with its defaults
#   make test    install into .venv (first time) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[test]'
	touch $@

.PHONY: install serve test bench
install: $(VENV)/.installed

serve: install
	$(VENV)/bin/ecg-dicom serve

test: install
	$(VENV)/bin/python -m pytest

bench: install
	$(VENV)/bin/python bench/bench_scp.py
	$(VENV)/bin/python bench/bench_render.py
	$(VENV)/bin/python bench/bench_inference.py
	$(VENV)/bin/python bench/bench_e2e.py

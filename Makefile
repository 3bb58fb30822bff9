# plugwire: the two commands a user runs first are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,grpc

.PHONY: demo test venv install lint typecheck pytest check-proto clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: venv
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"

demo: venv
	$(PY) -m pip install --quiet -e .
	$(PY) examples/demo.py

lint: install
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/ruff format --check src tests examples

typecheck: install
	$(VENV)/bin/mypy src tests/typing

pytest: install
	$(PY) -m pytest --cov --cov-branch --cov-report=term

check-proto: install
	$(PY) scripts/check_proto.py

test: check-proto lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov

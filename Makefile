# plugwire: the two commands a user runs first are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,grpc,cli,watch,uvloop,bench

.PHONY: demo test venv install lint typecheck pytest check-proto clean bench bench-quick bench-install chaos

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: venv
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"

demo: venv
	$(PY) -m pip install --quiet -e ".[grpc]"
	$(PY) examples/demo.py

lint: install
	$(VENV)/bin/ruff check src tests examples scripts benchmarks
	$(VENV)/bin/ruff format --check src tests examples scripts benchmarks

typecheck: install
	$(VENV)/bin/mypy src tests/typing benchmarks

pytest: install
	$(PY) -m pytest --cov --cov-branch --cov-report=term

# Benchmarks (benchmarks/README.md). Quick: every case runs and produces numbers, no timing is
# judged. Full: writes benchmarks/results/latest.json and regenerates docs/performance.md;
# PROFILE=1 adds a cProfile profile per case (benchmarks/profiles/).
bench-install: install

bench-quick: bench-install
	$(PY) -m benchmarks --quick

bench: bench-install
	$(PY) -m benchmarks --docs docs/performance.md $(if $(PROFILE),--profile,)

check-proto: install
	$(PY) scripts/check_proto.py

test: check-proto lint typecheck bench-quick pytest  # pytest last: its summary closes the output

# The fault-injection suite (docs/faults.md), run longer than `make test` runs it.
CHAOS_CYCLES ?= 5000
chaos: install
	PLUGWIRE_CHAOS_CYCLES=$(CHAOS_CYCLES) $(PY) -m pytest -m faults -p no:randomly -v -s tests  # -s: each storm prints its summary

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov

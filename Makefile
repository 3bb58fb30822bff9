# plugwire: the two commands a user runs first are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,grpc,cli,watch,uvloop,bench,prometheus,otel,docs

.PHONY: demo test venv install lint typecheck docs pytest test-bench test-matrix check-proto clean bench bench-quick bench-install chaos

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: venv
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"

# The library's tour (examples/demo.py), then the operator's path with the `plugwire` command
# only (examples/operator_demo.py): a host run from a config file, calls, health, metrics.
demo: venv
	$(PY) -m pip install --quiet -e ".[grpc,cli,prometheus]"
	$(PY) examples/demo.py
	$(PY) examples/operator_demo.py

lint: install
	$(VENV)/bin/ruff check src tests examples scripts benchmarks
	$(VENV)/bin/ruff format --check src tests examples scripts benchmarks

typecheck: install
	$(VENV)/bin/mypy src tests/contract/typing benchmarks

# The documentation site (mkdocs.yml): docs/*.md and an API reference generated from the
# docstrings, built into site/ with every warning an error (a broken link or anchor, a page
# left out of the nav, a docstring griffe cannot parse). NO_MKDOCS_2_WARNING: mkdocs-material's
# banner about its successor, printed on every build, is not ours to act on.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# The suite runs in development mode (PYTHONDEVMODE, inherited by pytest-xdist's workers):
# ResourceWarnings and the debug allocator's checks are on (pytest-asyncio keeps its loops out of
# asyncio's debug mode), and the leak checks of tests/conftest.py
# fail the test that leaked. JOBS: pytest-xdist workers (`make test JOBS=0` runs in one process);
# worksteal: a worker left idle takes tests queued on the other (the crash storm runs long).
JOBS ?= auto
SUITE := -m "not bench" -n $(JOBS) --dist worksteal -p no:randomly

# The suite on the default interpreter only, with coverage.
pytest: install
	PYTHONDEVMODE=1 $(PY) -m pytest $(SUITE) --cov --cov-branch --cov-report=term

# The benchmark-harness tests (tests/bench/): once, on the default interpreter. Not in
# development mode: its debug allocator under valgrind (the instruction-count test) takes
# minutes; the leak checks of tests/conftest.py still run.
test-bench: install
	$(PY) -m pytest -m bench -p no:randomly -q

# The suite on every Python 3.11, 3.12 and 3.13 found (PATH, pyenv), each in its own venv
# (.venvs/py3.X; the default interpreter's version in .venv, with coverage), then a smoke run
# on a free-threaded 3.13 where present. Says which versions ran and which were skipped.
# MATRIX_ARGS: e.g. `--require 3.13` fails instead of skipping a version not found (CI's).
MATRIX_ARGS ?=
test-matrix: install
	$(PY) scripts/run_matrix.py --coverage $(MATRIX_ARGS) -- $(SUITE) -q

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

test: check-proto lint typecheck docs bench-quick test-bench test-matrix  # the matrix last: its summary closes the output

# The fault-injection suite (docs/faults.md), run longer than `make test` runs it.
CHAOS_CYCLES ?= 5000
chaos: install
	PLUGWIRE_CHAOS_CYCLES=$(CHAOS_CYCLES) $(PY) -m pytest -m faults -p no:randomly -v -s tests  # -s: each storm prints its summary

clean:
	rm -rf $(VENV) .venvs .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov site

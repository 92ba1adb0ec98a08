# Two commands: `make run` (set up if needed, then start the app) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint clean

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port 8501

test: $(STAMP)
	@test -x /usr/bin/chromium || { echo "The browser tests need Debian's chromium: run 'apt-get install -y chromium' (as root), then 'make test' again."; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/mypy rag app.py ui_common.py pages tests
	$(BIN)/python -m pytest

setup: $(STAMP)

# torch is installed first from its pinned CPU build; unpinned, sentence-transformers would pull CUDA (GBs).
$(STAMP): requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==26.3
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy rag app.py ui_common.py pages tests

clean:
	rm -rf $(VENV)

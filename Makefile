# Agentpool developer entry points. The two that matter: `make dev` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLUSTER_DEV := agentpool-dev
PKGS := operator/agentpool_operator agent_image/agent_runtime

.PHONY: help venv binaries linters redis images lint fmt test test-unit test-integration dev dev-down bench crds kind-up kind-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python >= 3.11 and retry" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python >= 3.11 is required (found $$($(PYTHON) --version))" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing the project into $(VENV); log: $(VENV)/pip.log"
	@$(PY) -m pip install -q --upgrade pip >$(VENV)/pip.log 2>&1 && \
	 $(PY) -m pip install -q -e '.[dev]' >>$(VENV)/pip.log 2>&1 || \
	 { tail -n 20 $(VENV)/pip.log >&2; echo "error: pip install failed; full log: $(VENV)/pip.log. Retry with: make venv" >&2; exit 1; }
	@touch $@

venv: $(STAMP) ## create .venv and install the project with all extras

binaries: ## build the control-plane binaries into ~/.cache/agentpool (once)
	@hack/build-binaries.sh >/dev/null

linters: ## build the manifest linters (kube-score) into ~/.cache/agentpool (once)
	@hack/build-linters.sh >/dev/null

redis: ## make sure redis-server is installed
	@hack/ensure-redis.sh >/dev/null

images: ## build the agent and operator images (Docker when it runs, else buildah); docs/images.md
	@hack/build-images.sh

lint: $(STAMP) ## ruff + mypy --strict + import-linter (the layers)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

fmt: $(STAMP) ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test-unit: $(STAMP) ## unit tests only (no cluster, no redis)
	$(PY) -m pytest tests/unit -q

# The end-to-end tests' pods run in the agent image where buildah works (image mode of the
# pod runner; docs/images.md): AGENTPOOL_TEST_POD_RUNNER_IMAGE=0 runs them as processes.
# The image is built (when it changed) before pytest, not inside a test's timeout.
POD_RUNNER_IMAGE_TESTS = $${AGENTPOOL_TEST_POD_RUNNER_IMAGE:-$$(hack/ensure-buildah.sh >/dev/null 2>&1 && AGENTPOOL_IMAGE_BUILDER=buildah hack/build-images.sh agent | awk '$$1 == "agent" {print $$2}')}

test-integration: $(STAMP) binaries redis ## integration tests against the local control plane and redis
	AGENTPOOL_TEST_POD_RUNNER_IMAGE=$(POD_RUNNER_IMAGE_TESTS) $(PY) -m pytest tests/integration -q

test: lint binaries redis ## lint, then every test (unit + integration)
	AGENTPOOL_TEST_POD_RUNNER_IMAGE=$(POD_RUNNER_IMAGE_TESTS) $(PY) -m pytest tests -q --durations=30

dev: $(STAMP) binaries ## the local cluster, the operator and the sample pools, Ready
	@hack/dev.sh

dev-down: ## stop the local dev cluster, its operator, pod runner, model server and redis
	@dir=$${AGENTPOOL_CACHE:-$$HOME/.cache/agentpool}/dev/$(CLUSTER_DEV); \
	 for name in pod-runner operator model redis; do \
	   pid=$$dir/$$name.pid; [ -f $$pid ] || continue; p=$$(cat $$pid); kill $$p 2>/dev/null || true; \
	   for _ in $$(seq 1 100); do kill -0 $$p 2>/dev/null || break; sleep 0.1; done; rm -f $$pid; \
	 done
	@hack/cluster.sh down $(CLUSTER_DEV)

bench: $(STAMP) redis ## run the benchmarks (results: benchmarks/README.md)
	$(PY) -m benchmarks

crds: $(STAMP) ## regenerate crds/, the chart's CRDs and the field reference
	$(PY) -m agentpool_operator.crdgen --write

kind-up: ## create a real multi-node kind cluster (needs Docker and kind)
	@command -v kind >/dev/null || { echo "error: kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 1; }
	kind create cluster --name agentpool --config kind-config.yaml

kind-down: ## delete the kind cluster
	kind delete cluster --name agentpool

clean: ## remove the virtualenv and caches (not the binary cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

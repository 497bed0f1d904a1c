# quarks-job — developer entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/quarks-job
# Extra flags for the operator in `make run`, e.g. make run ARGS="--monitored-id staging"
ARGS ?= --log-level info

.PHONY: help build test test-unit test-integration lint fmt crd crd-check control-plane testenv run bench clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

build: ## Build the quarks-job binary
	$(CARGO) build --locked

control-plane: ## Provide etcd, kube-apiserver, kube-controller-manager (KUBEBUILDER_ASSETS, cache, or a one-time ~7 min build)
	@bash hack/control-plane.sh ensure >/dev/null

test: control-plane ## Run all tests: unit tests and integration tests against a real local control plane
	$(CARGO) test --locked

test-unit: ## Run the unit tests only (no control plane)
	$(CARGO) test --locked --lib

test-integration: control-plane ## Run the integration tests only
	$(CARGO) test --locked --tests --test '*'

lint: ## cargo fmt --check and clippy with warnings denied
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt

crd: ## Regenerate manifests/crd.yaml from the Rust types
	$(CARGO) run --locked -q -- crd > manifests/crd.yaml

crd-check: ## Fail if manifests/crd.yaml differs from the Rust types
	@$(CARGO) run --locked -q -- crd | diff -u manifests/crd.yaml - \
	  || { echo "manifests/crd.yaml is out of date: run 'make crd' and commit it" >&2; exit 1; }

testenv: control-plane ## Start a local control plane and print the KUBECONFIG to export (Ctrl-C stops it)
	$(CARGO) run --locked -q --example testenv

run: build ## Run the operator: against the configured cluster if one answers, else against a local control plane
	@if kubectl cluster-info --request-timeout=3s >/dev/null 2>&1; then \
	  echo "make run: using the cluster of your kubeconfig" >&2; \
	  $(BIN) $(ARGS); \
	else \
	  echo "make run: no cluster configured; starting a local control plane" >&2; \
	  bash hack/control-plane.sh ensure >/dev/null && \
	  $(CARGO) run --locked -q --example testenv -- $(BIN) --webhook-server-host 127.0.0.1 $(ARGS); \
	fi

bench: control-plane ## Measure speed and memory (release build, local control plane); writes docs/benchmarks.md
	$(CARGO) bench --locked --bench operator

clean: ## Remove build output
	$(CARGO) clean

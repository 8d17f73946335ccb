# A thin facade over cargo and the scripts; `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

DATA_DIR ?= .data
NATS_PORT ?= 4222
LISTEN ?= 127.0.0.1:4566
REGION ?= us-east-1
VENV := .venv
AWS_CLI := $(VENV)/bin/aws
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps build run test test-rust test-cli lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## Install what the system and its tests need (nats-server, prometheus from Debian's packages)
	@command -v nats-server >/dev/null || { \
	  echo "installing nats-server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nats-server >/dev/null; }
	@command -v curl >/dev/null || $(SUDO) apt-get install -y -qq curl >/dev/null
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing prometheus (the metrics test's server, promtool)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus >/dev/null; }

$(AWS_CLI):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check awscli

build: ## Build the all-in-one server
	cargo build -p kms-server

run: deps build ## Run nats-server and every service; prints the aws CLI environment
	DATA_DIR=$(DATA_DIR) NATS_PORT=$(NATS_PORT) LISTEN=$(LISTEN) REGION=$(REGION) scripts/run.sh

test: deps $(AWS_CLI) test-rust test-cli check-manifests ## Run every test: unit, end-to-end (SDK), the aws CLI scenario, the manifests

test-rust: deps $(AWS_CLI) ## Unit tests and the SDK end-to-end tests (the web-identity one runs the aws CLI)
	AWS_CLI=$(abspath $(AWS_CLI)) cargo test --workspace --no-fail-fast

test-cli: deps $(AWS_CLI) build ## The aws CLI scenario against a running system
	AWS_CLI=$(abspath $(AWS_CLI)) KMS_SERVER_BIN=$(abspath target/debug/kms-server) bash tests/cli/scenario.sh

lint: ## rustfmt check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: deps ## Load, scale, per-service and audit benchmarks here and in moto (~15-25 min, ~5 GB disk); appends to bench/report.md (see BENCHMARKS.md)
	scripts/bench.sh

fmt: ## Format the code
	cargo fmt --all

clean: ## Remove build output and local data
	cargo clean
	rm -rf $(DATA_DIR) $(VENV)

# ---- deployment: image, Kubernetes manifests, Helm chart --------------------------------
.PHONY: image check-manifests k8s-check nats-auth

image: ## Build the container image localhost/kms:dev (podman/docker; says so without one)
	scripts/image.sh

check-manifests: ## Render the Helm chart and kustomize overlays; lint and validate them offline
	scripts/k8s-check.sh

k8s-check: check-manifests

nats-auth: ## Re-render NATS permissions (deploy/nats) and the kustomize base from the chart
	python3 scripts/nats-auth.py
	scripts/install-helm.sh >/dev/null
	scripts/k8s-base.sh

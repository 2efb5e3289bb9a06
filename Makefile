# Thin wrappers over the real commands; see README.md.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-lowest testenv lint unit integration bench bootstrap manifests image

## The operator image; the tag defaults to the chart's appVersion (the tag the chart deploys by default).
IMAGE ?= campaign-autoscaler
TAG ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' charts/campaign-autoscaler/Chart.yaml)

bootstrap:
	@scripts/bootstrap.sh

testenv: bootstrap
	@scripts/build-testenv.sh >/dev/null

## The whole suite: lint, layer contracts, unit tests, and the integration tier against a real local
## kube-apiserver + etcd + controller-manager and a real Prometheus (provisioned on first use, cached).
test: testenv lint
	$(BIN)/pytest -q

## The lowest-versions tier: the unit tests and one operator smoke test, with every runtime dependency at
## exactly the lowest version pyproject allows, in a venv of its own under build/ (see the script).
test-lowest: testenv
	@scripts/lowest-deps.sh

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check operator tests
	$(BIN)/lint-imports

unit: bootstrap
	$(BIN)/pytest -q tests/unit

integration: testenv
	$(BIN)/pytest -q tests/integration

demo: testenv
	$(BIN)/campaign-autoscaler demo

bench: testenv
	$(BIN)/python -m benchmarks

## Re-render manifests/ (and the chart's copies of the CRD and of monitoring/) from the chart; a test fails when stale.
manifests: bootstrap
	$(BIN)/python scripts/render_manifests.py

## Build the operator image with docker, else podman: `make image IMAGE=registry.example.com/team/campaign-autoscaler`.
image:
	@engine=$$(command -v docker || command -v podman) || { \
	  echo "make image: neither docker nor podman is installed; install one of them, or build the Dockerfile with your own builder" >&2; \
	  exit 2; }; \
	echo "Building $(IMAGE):$(TAG) with $$engine" >&2; \
	$$engine build -t "$(IMAGE):$(TAG)" .

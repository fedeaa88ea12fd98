# Suanli's entry points. The README's two commands are `make demo` and `make test`.
PYTHON ?= python3
CACHE  := .cache
STAMP  := $(CACHE)/setup-$(shell cat pyproject.toml | sha256sum | cut -c1-12).stamp
export PYTHONPATH := $(CURDIR)/operator

.PHONY: setup tools toolchains test test-unit test-integration lint crds demo cluster-up cluster-down bench clean

## setup: install Suanli (compiling kernels/) and the test tools; redone only when pyproject.toml changes
setup: $(STAMP)
$(STAMP): pyproject.toml
	@mkdir -p $(CACHE)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

## tools: build the pinned control-plane binaries (cached under ~/.cache/suanli)
tools:
	hack/build-tools

## toolchains: nvcc (PyPI) and hipcc (Debian) for the kernels' CUDA/HIP compile checks; once per machine
toolchains: $(CACHE)/toolchains.stamp
$(CACHE)/toolchains.stamp: kernels/tools/install-gpu-toolchains.sh
	@mkdir -p $(CACHE)
	PYTHON=$(PYTHON) kernels/tools/install-gpu-toolchains.sh
	@touch $@

## test: unit, kernel (CPU run, CUDA/HIP compile, ASan) and integration tests on a real control plane
test: setup tools toolchains
	SUANLI_REQUIRE_GPU_TOOLCHAINS=1 $(PYTHON) -m pytest -q -p no:cacheprovider --timeout=900

test-unit: setup
	$(PYTHON) -m pytest -q -m "not integration" --timeout=300

test-integration: setup tools
	$(PYTHON) -m pytest -q -m integration --timeout=600

# checkov and its dependencies, pinned by hack/checkov/requirements.txt, in a venv of their own (its
# dependency tree must not touch the project's) under ~/.cache/suanli, keyed by that file: installed once,
# offline afterwards.
CHECKOV_ENV := $(or $(SUANLI_CACHE),$(HOME)/.cache/suanli)/checkov-$(shell sha256sum hack/checkov/requirements.txt | cut -c1-12)
CHECKOV     := $(CHECKOV_ENV)/bin/checkov

## lint: ruff, mypy, hadolint, helm lint, and checkov (an independent manifest scanner) on the rendered chart
lint: setup tools $(CHECKOV)
	$(PYTHON) -m ruff check operator tests bench hack
	$(PYTHON) -m mypy
	hadolint Dockerfile
	"$$(hack/build-tools helm)/helm" lint --strict helm/suanli
	@mkdir -p $(CACHE)
	"$$(hack/build-tools helm)/helm" template suanli helm/suanli -n suanli-system \
		--set metrics.serviceMonitor.enabled=true --set grafana.dashboard.enabled=true \
		--set networkPolicy.enabled=true > $(CACHE)/chart-rendered.yaml
	$(CHECKOV) --config-file hack/checkov/config.yaml -f $(CACHE)/chart-rendered.yaml
	$(CHECKOV) --config-file hack/checkov/config.yaml -d deploy/policies

$(CHECKOV): hack/checkov/requirements.txt
	rm -rf $(CHECKOV_ENV) && $(PYTHON) -m venv $(CHECKOV_ENV)
	$(CHECKOV_ENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r $<
	$(CHECKOV_ENV)/bin/pip check --disable-pip-version-check
	@touch $@

## crds: regenerate crds/ from the pydantic models (a test fails when they drift)
crds: setup
	$(PYTHON) -m suanli crd --output-dir crds
	rm -f helm/suanli/crds/suanli.io_*.yaml && cp crds/*.yaml helm/suanli/crds/

## demo: local control plane, simulated heterogeneous fleet, the operator, sample jobs, a placement report
demo: setup tools
	$(PYTHON) hack/demo.py

cluster-up: tools
	@hack/cluster up

cluster-down:
	@hack/cluster down

clean:
	hack/cluster down || true
	rm -rf build $(CACHE) .pytest_cache .mypy_cache .ruff_cache

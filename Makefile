# The two commands a newcomer needs are `make run` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
export PORT

VENV := $(CURDIR)/.venv
# The emulator (moto: DynamoDB + SQS) of `make run-aws-local`. `scripts/emulator.sh run` gives a
# command the emulator's variables and fake credentials; `make test` runs on an emulator of its own
# (a port the OS picks) unless MOTO_PORT is set in the environment or on the command line.
MOTO_PORT ?= 5055
# cargo-lambda finds zig with `python3 -m ziglang`: the venv's python3 must come first.
TOOLS_PATH := PATH="$(VENV)/bin:$$PATH"

# The Lambda functions: one crate, and one binary of the same name, per directory under functions/.
ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
FUNCTIONS := $(notdir $(wildcard $(ROOT)/functions/*))
# Where `cargo lambda build` leaves each function's binary (<crate>/bootstrap). Exported, so the
# build-% rule, which SAM runs from a scratch copy of a function's directory, reads the same one.
LAMBDA_DIR ?= $(abspath $(or $(CARGO_TARGET_DIR),$(ROOT)/target))/lambda
export LAMBDA_DIR
# Extra flags of that build, e.g. --timings (scripts/bundle-report.sh).
LAMBDA_BUILD_FLAGS ?=
# Its cargo profile (Cargo.toml says why this one).
LAMBDA_PROFILE := lambda-release

# `make dist`: the host for a Linux server (scripts/dist.sh): static musl binaries built with
# cargo-zigbuild (zig from the venv), one tarball per architecture in DIST_DIR with the systemd unit,
# the environment file and INSTALL.md of local/dist/, and SHA256SUMS. DIST_TARGETS=x86_64 builds one
# architecture only. The release profile (thin LTO, stripped) is the one `make run` uses.
DIST_DIR ?= $(ROOT)/dist
DIST_TARGETS ?= x86_64 aarch64
DIST_BINS ?= koogallery-local koogallery-admin
# Packed when the crate has them, else left out with a warning (none today).
DIST_OPTIONAL_BINS ?=
DIST_PROFILE ?= release
DIST_HOST_ARCH := $(shell uname -m)
DIST_ENV := CARGO="$(CARGO)" DIST_DIR="$(DIST_DIR)" DIST_BINS="$(DIST_BINS)" \
  DIST_OPTIONAL_BINS="$(DIST_OPTIONAL_BINS)" DIST_PROFILE="$(DIST_PROFILE)"
# `make image`: the container image of dist-host's tarball (local/dist/Containerfile), built with
# buildah into its vfs store (no overlayfs needed, e.g. inside another container; podman sees it
# with the same --storage-driver).
IMAGE ?= koogallery:latest
BUILDAH_ARGS ?= --storage-driver vfs

.PHONY: run test lint unit validate tools browser bench simulate run-aws-local build deploy fmt clean print-lambda-profile dist dist-host image

## run: build optimised and serve the production interface on 127.0.0.1:$(PORT)/produce (data in .data/)
run:
	$(CARGO) run --release --locked -p koogallery-local

## test: formatting, lints, the template lint, and every test: unit, port contracts on the embedded
## store and on DynamoDB/SQS (emulator), end-to-end over HTTP on both, single sign-on in
## headless Chromium (`browser` installs Chromium and the Node packages first), and this machine's
## tarball of `make dist` and its image started and stopped (`dist-host` and `image` build them;
## cargo's no-op when they are up to date)
test: lint validate browser dist-host image
	KOOGALLERY_DIST_DIR="$(DIST_DIR)" KOOGALLERY_IMAGE="$(IMAGE)" BUILDAH_ARGS="$(BUILDAH_ARGS)" \
	  bash scripts/emulator.sh run $(CARGO) test --locked --workspace -- --include-ignored

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

## unit: every test that needs no emulator (quick loop while developing)
unit:
	$(CARGO) test --locked --workspace

## tools: the pinned Python-packaged tools in .venv (moto, cfn-lint, SAM CLI, cargo-lambda + zig)
tools:
	bash scripts/tools.sh

## browser: Debian's chromium and tests/browser's Node packages, for the headless-browser SSO test
## (tests/sso_browser.rs; `make unit` skips it)
browser:
	bash scripts/browser.sh

## validate: lint the SAM template
validate: tools
	$(TOOLS_PATH) cfn-lint template.yaml
	$(TOOLS_PATH) AWS_DEFAULT_REGION=us-east-1 sam validate --lint

## run-aws-local: the local host on the AWS adapters against the emulator (same PORT and keys as `make run`)
run-aws-local: tools
	MOTO_PORT=$(MOTO_PORT) bash scripts/emulator.sh run \
	  env KOOGALLERY_BACKEND=aws $(CARGO) run --release --locked -p koogallery-local --features aws

## build: the Lambda bundle: every function in one `cargo lambda build` (arm64), then SAM packages
## each function's own binary (.aws-sam/build)
build: tools
	$(TOOLS_PATH) $(CARGO) lambda build --locked --profile $(LAMBDA_PROFILE) --arm64 --lambda-dir "$(LAMBDA_DIR)" \
	  $(LAMBDA_BUILD_FLAGS) $(addprefix -p ,$(FUNCTIONS))
	$(TOOLS_PATH) sam build --language-extensions

# scripts/coldstart-all.sh builds its native binaries with the same profile.
print-lambda-profile:
	@echo $(LAMBDA_PROFILE)

# SAM's makefile build method (template.yaml: BuildMethod makefile, ContextPath .) runs
# `make build-<LogicalId>` in a copy of the function's CodeUri, functions/<crate>, with ARTIFACTS_DIR
# set. The rule copies that crate's binary from the build above: the code a function gets follows its
# CodeUri, so the Fn::ForEach loops need nothing more than their CodeUri lookup.
build-%:
	@crate="$$(sed -n 's/^name = "\(.*\)"$$/\1/p' Cargo.toml 2>/dev/null | head -n 1)"; \
	test -n "$$crate" || { echo "build-$*: no crate in $$PWD (CodeUri is functions/<crate>)" >&2; exit 1; }; \
	bin="$(LAMBDA_DIR)/$$crate/bootstrap"; \
	test -f "$$bin" || { echo "build-$*: $$bin missing: run make build, not sam build alone" >&2; exit 1; }; \
	cp "$$bin" "$(ARTIFACTS_DIR)/bootstrap"

## deploy: sam deploy (guided the first time, until samconfig.toml holds a region)
deploy: build
	if grep -q '^region' samconfig.toml; then $(TOOLS_PATH) sam deploy; else $(TOOLS_PATH) sam deploy --guided; fi

## bench: criterion figures for BENCHMARKS.md
bench:
	$(CARGO) bench --locked -p koogallery-local --bench callbacks
	$(CARGO) bench --locked -p koogallery-local --bench license

## simulate: walk a whole lifecycle against a running `make run` (another terminal)
simulate:
	$(CARGO) run --release --locked -p koogallery-sim -- lifecycle --url http://127.0.0.1:$(PORT)/produce

## dist: static (musl) tarballs of the host for a Linux server, x86_64 and aarch64, in dist/ with
## SHA256SUMS (DIST_TARGETS=aarch64 for one; local/dist/INSTALL.md is what a server needs)
dist: tools
	$(TOOLS_PATH) $(DIST_ENV) bash scripts/dist.sh $(DIST_TARGETS)

## dist-host: the tarball of this machine's architecture only (x86_64 here; what `make test` and
## `make image` use)
dist-host: tools
	$(TOOLS_PATH) $(DIST_ENV) bash scripts/dist.sh $(DIST_HOST_ARCH)

## image: the container image $(IMAGE) of dist-host's tarball (buildah, installed from Debian if
## missing; local/dist/Containerfile: scratch, user 65532, the data in the volume /data)
image: dist-host
	DIST_DIR="$(DIST_DIR)" DIST_ARCH="$(DIST_HOST_ARCH)" IMAGE="$(IMAGE)" BUILDAH_ARGS="$(BUILDAH_ARGS)" \
	  bash scripts/image.sh

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf .data .aws-sam dist

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

.PHONY: run test lint unit validate tools bench simulate run-aws-local build deploy fmt clean

## run: build optimised and serve the production interface on 127.0.0.1:$(PORT)/produce (data in .data/)
run:
	$(CARGO) run --release --locked -p koogallery-local

## test: formatting, lints, the template lint, and every test: unit, port contracts on the embedded
## store and on DynamoDB/SQS (emulator), end-to-end over HTTP on both
test: lint validate
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

## validate: lint the SAM template
validate: tools
	$(TOOLS_PATH) cfn-lint template.yaml
	$(TOOLS_PATH) AWS_DEFAULT_REGION=us-east-1 sam validate --lint

## run-aws-local: the local host on the AWS adapters against the emulator (same PORT and keys as `make run`)
run-aws-local: tools
	MOTO_PORT=$(MOTO_PORT) bash scripts/emulator.sh run \
	  env KOOGALLERY_BACKEND=aws $(CARGO) run --release --locked -p koogallery-local --features aws

## build: the Lambda bundle (cargo lambda, arm64) through SAM
build: tools
	$(TOOLS_PATH) sam build --beta-features --language-extensions

## deploy: sam deploy (guided the first time, until samconfig.toml holds a region)
deploy: build
	if grep -q '^region' samconfig.toml; then $(TOOLS_PATH) sam deploy; else $(TOOLS_PATH) sam deploy --guided; fi

## bench: criterion figures for BENCHMARKS.md
bench:
	$(CARGO) bench --locked -p koogallery-local --bench callbacks

## simulate: walk a whole lifecycle against a running `make run` (another terminal)
simulate:
	$(CARGO) run --release --locked -p koogallery-sim -- lifecycle --url http://127.0.0.1:$(PORT)/produce

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf .data .aws-sam

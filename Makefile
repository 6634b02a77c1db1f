# The two commands a newcomer needs are `make run` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
export PORT

.PHONY: run test lint unit bench simulate fmt clean

## run: build optimised and serve the production interface on 127.0.0.1:$(PORT)/produce (data in .data/)
run:
	$(CARGO) run --release --locked -p koogallery-local

## test: formatting, lints and every test (unit, contract, end-to-end over HTTP)
test: lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --workspace

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
	rm -rf .data

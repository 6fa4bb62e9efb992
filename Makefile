# Siaran: `make run` brings the whole product up; `make test` runs every test suite.
# Both are idempotent and install what is missing (scripts/setup.sh).

.PHONY: run test setup build lint fmt sqlx bench fuzz contract clean help

help:
	@echo "make run    set up, build and serve Siaran on http://localhost:8000"
	@echo "make test   every test suite (what CI runs)"
	@echo "make setup  system packages, PostgreSQL, Redis and the database only"
	@echo "make lint   rustfmt and clippy"
	@echo "make sqlx   re-check every SQL query against the migrated schema and rewrite .sqlx/ (after changing a query or a migration)"
	@echo "make bench  the benchmarks under benches/ (see benches/README.md)"
	@echo "make fuzz   the long fuzz runs: every fuzz target for an hour or 10M executions (FUZZ_SECONDS, FUZZ_RUNS), then the API contract for 30 minutes (CONTRACT_SECONDS)"

run:
	@scripts/run.sh

test:
	@scripts/test.sh

setup:
	@scripts/setup.sh

build:
	cargo build --release --locked

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

sqlx:
	@scripts/sqlx.sh

bench:
	@scripts/bench.sh $(BENCH)

# Long runs: every cargo-fuzz target, then schemathesis against a real server (`make test` runs both briefly).
fuzz:
	@scripts/fuzz.sh
	@scripts/contract.sh $${CONTRACT_SECONDS:-1800}

contract:
	@scripts/contract.sh $${CONTRACT_SECONDS:-150}

clean:
	cargo clean
	rm -rf hls-out/*/ frontend/dist

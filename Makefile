# cmdbus — run `make help` for the targets.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup postgres demo test lint typecheck test-coverage test-reliability bench bench-quick

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

setup: ## Install the toolchain components, nextest, llvm-cov, Chromium + chromedriver and the pre-commit hook
	rustup show active-toolchain >/dev/null
	rustup component add rustfmt clippy llvm-tools-preview
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest
	@command -v cargo-llvm-cov >/dev/null || $(CARGO) install --locked cargo-llvm-cov
	@# The console's browser test drives Debian's Chromium through chromedriver.
	@command -v chromedriver >/dev/null || { \
		$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; }; }
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		git config core.hooksPath .githooks && echo "pre-commit hook: .githooks/pre-commit (make lint + coverage gate)"; \
	fi

postgres: ## Start the local PostgreSQL if it is not running
	./scripts/ensure-postgres.sh

demo: ## Run the demo: typed commands, a worker, replies
	./scripts/demo.sh

test: postgres ## Run every test (unit, conformance, integration, UI, doc)
	@command -v cargo-nextest >/dev/null || $(MAKE) setup
	./scripts/test-data.sh run $(CARGO) nextest run --workspace --all-features --no-fail-fast
	$(CARGO) test --workspace --all-features --doc

lint: ## rustfmt check, clippy -D warnings on all targets, rustdoc -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings
	$(CARGO) clippy -p cmdbus -p cmdbus-pg -- -D warnings
	@# The CLI binary is named `cmdbus` like the library, so both write
	@# target/doc/cmdbus: in one invocation their rustdocs race on that
	@# directory. The binary goes first, then the libraries overwrite it.
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features -q -p cmdbus-cli
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features -q -p cmdbus -p cmdbus-macros -p cmdbus-pg -p cmdbus-web

typecheck: ## cargo check on all targets
	$(CARGO) check --workspace --all-features --all-targets

# Branch coverage needs an unstable rustc flag; RUSTC_BOOTSTRAP=1 allows it
# on the pinned stable toolchain. The compile-fail suite is left out here: it
# measures no library code (the macros' logic is covered by their unit tests)
# and its blessed spans differ under RUSTC_BOOTSTRAP; `make test` runs it.
COVERAGE := env RUSTC_BOOTSTRAP=1 $(CARGO) llvm-cov
test-coverage: postgres ## Line AND branch coverage per library crate and in total; fails under 80% of either
	@command -v cargo-llvm-cov >/dev/null || $(MAKE) setup
	./scripts/test-data.sh run $(COVERAGE) nextest --workspace --all-features --branch --no-report \
		-E 'not binary(ui)'
	$(COVERAGE) report --branch --json --summary-only --output-path target/coverage.json \
		--ignore-filename-regex '/(tests|examples|bench)/'
	python3 scripts/coverage-gate.py target/coverage.json

test-reliability: postgres ## Full-size soak (100k commands) and crash runs
	SOAK_COMMANDS=100000 CRASH_KILLS=20 $(CARGO) nextest run -p cmdbus-tests --test soak --test crash --no-capture

bench: postgres ## Benchmark (release, <= 5 min): table + target/bench/cmdbus-bench.json
	$(CARGO) run -q --release -p cmdbus-bench

bench-quick: postgres ## Reduced benchmark (<= 60 s), run by CI so it cannot rot
	$(CARGO) run -q --release -p cmdbus-bench -- --quick

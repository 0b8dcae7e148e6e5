# Thin wrapper over CMake presets and the test runners. `make help` lists the targets.
.PHONY: all build dev demo check unit tsan e2e e2e-pg web fuzz-replay format format-check bench clean help deps

JOBS ?= $(shell nproc)

all: build

help:
	@echo "make deps          install apt and npm dependencies (scripts/install-deps.sh)"
	@echo "make build         release build with -Werror (build/ci)"
	@echo "make dev           debug build with ASan+UBSan (build/dev)"
	@echo "make demo          build and start the hub with simulated devices"
	@echo "make check         everything CI runs: format and citations, build, unit, tsan, fuzz replay, end-to-end (SQLite and PostgreSQL), web"
	@echo "make tsan          the unit tests labelled threads, under ThreadSanitizer (build/tsan)"
	@echo "make e2e-pg        the SDK conformance files on PostgreSQL, one hub then a 3-node cluster"
	@echo "make unit | e2e | web | fuzz-replay | format-check | bench"

deps:
	scripts/install-deps.sh

build:
	cmake --preset ci >/dev/null
	cmake --build build/ci -j$(JOBS)

dev:
	cmake --preset dev >/dev/null
	cmake --build build/dev -j$(JOBS)

demo: build
	scripts/demo.sh

unit: build
	ctest --test-dir build/ci -L unit --output-on-failure -j$(JOBS)

# Only the tests that run threads (CTest label "threads"): quick, and the ones TSan can judge.
# A race report fails the test (TSan's exit code); halt_on_error stops at the first.
tsan:
	cmake --preset tsan >/dev/null
	cmake --build build/tsan -j$(JOBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)" \
		ctest --test-dir build/tsan -L threads --output-on-failure -j$(JOBS)

# End-to-end tests run the ASan+UBSan binaries: a leak or an overflow fails them too.
e2e: dev
	cd tests/e2e && IOTDM_BUILD_DIR=$(CURDIR)/build/dev npm test

# The SDK conformance files again with the hub's store on PostgreSQL (the same files, one switch:
# IOTDM_E2E_PG_DIR, see tests/e2e/lib/hub.js), then against a cluster of three nodes behind
# HAProxy (IOTDM_E2E_CLUSTER=1, tests/e2e/lib/cluster.js) with the cluster's own tests, all on a
# throwaway server (scripts/pg-tmp.sh).
E2E_PG_FILES = conformance_registry.test.js conformance_device.test.js \
	conformance_methods.test.js conformance_query.test.js mqtt_negative.test.js durability.test.js \
	jobs.test.js
E2E_PG_ENV = IOTDM_E2E_PG_DIR=$(CURDIR)/build/e2e-pg IOTDM_BUILD_DIR=$(CURDIR)/build/dev
e2e-pg: dev
	scripts/pg-tmp.sh destroy build/e2e-pg && scripts/pg-tmp.sh start build/e2e-pg >/dev/null
	cd tests/e2e && $(E2E_PG_ENV) node --test --test-concurrency=1 $(E2E_PG_FILES) && \
		$(E2E_PG_ENV) IOTDM_E2E_CLUSTER=1 node --test --test-concurrency=1 $(E2E_PG_FILES) \
			agent.test.js file_upload.test.js dps.test.js cluster/cluster.test.js; \
		rc=$$?; cd $(CURDIR) && scripts/pg-tmp.sh destroy build/e2e-pg; exit $$rc

# The dashboard in headless chromium (playwright-core); screenshots land in tests/web/artifacts.
web: dev
	cd tests/web && IOTDM_BUILD_DIR=$(CURDIR)/build/dev npm test

fuzz-replay:
	scripts/fuzz-replay.sh

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

# clang-format, and no citation of a file outside the repository (scripts/check-citations.sh).
format-check:
	scripts/format-check.sh
	scripts/check-citations.sh

check: format-check build unit tsan fuzz-replay e2e e2e-pg web
	@echo "make check: all passed"

bench: build
	bench/run.sh

clean:
	rm -rf build

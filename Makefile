# baton — one entry point: build, install, demo, check, bench.
#   make            build the extension, the worker and the console (baton CLI and dashboard)
#   make install    install the extension into PostgreSQL (pg_config), baton-worker and baton into $(PREFIX)/bin
#   make demo       everything end to end on a throwaway cluster
#   make check      all tests (pgTAP, isolation, worker integration and crash tests) on throwaway
#                   clusters; builds with -Werror (as CI does)
#   make installcheck  the SQL tests (pgTAP suites and isolation specs) against an existing server
#                   (libpq's PG* variables) where baton and pgTAP are installed
#   make bench      benchmarks (bench/README.md); make bench-quick for a 1-minute subset
#   make up / down  a throwaway cluster (and example workers) to explore
PG_CONFIG ?= pg_config
PREFIX    ?= /usr/local
export PG_CONFIG

.PHONY: all deps extension worker console install install-extension install-worker install-console check installcheck demo up down bench bench-quick bench-peers clean

all: META.json extension worker console

# One version source: VERSION feeds META.json, the control file and the C code.
# PGXN's release_status follows CHANGELOG.md: "unstable" while the version's
# section says "unreleased", "stable" once it carries a date.
META.json: META.json.in VERSION CHANGELOG.md
	v=$$(cat VERSION); \
	if grep -q "^## $$v .*unreleased" CHANGELOG.md; then s=unstable; else s=stable; fi; \
	sed -e "s/@VERSION@/$$v/g" -e "s/@RELEASE_STATUS@/$$s/g" $< > $@

deps:
	@scripts/deps.sh

extension:
	$(MAKE) -C extension

worker:
	$(MAKE) -C worker

console:
	$(MAKE) -C console

install-extension: extension
	@if [ -w "$$($(PG_CONFIG) --sharedir)/extension" ]; then $(MAKE) -C extension install >/dev/null; \
	 else echo "baton: cannot write to $$($(PG_CONFIG) --sharedir)/extension; run: sudo make install" >&2; exit 1; fi

install-worker: worker
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 worker/baton-worker $(DESTDIR)$(PREFIX)/bin/baton-worker

install-console: console
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 console/baton $(DESTDIR)$(PREFIX)/bin/baton

install: install-extension install-worker install-console

# Warnings are errors here and in CI (.ci/run runs make check), not in a user's plain make.
check: deps
	$(MAKE) all install-extension WERROR=-Werror
	tests/run.sh

# PGXS-style: the isolation specs (extension/Makefile's ISOLATION) and the pgTAP suites
# (tests/installcheck.sh) against the server libpq's PG* variables point at.
installcheck:
	$(MAKE) -C extension installcheck
	tests/installcheck.sh

# The demo's own output is what a newcomer reads: build quietly (errors still show).
demo: deps
	@echo "building baton (extension and worker)..."
	@$(MAKE) -s --no-print-directory all install-extension >/dev/null
	@examples/demo.sh

up: deps
	@echo "building baton (extension and worker)..."
	@$(MAKE) -s --no-print-directory all install-extension >/dev/null
	@examples/demo.sh --up

down:
	@examples/demo.sh --down

bench: deps
	$(MAKE) all
	$(MAKE) install-extension
	bench/run.sh

bench-quick: deps
	$(MAKE) all
	$(MAKE) install-extension
	bench/run.sh --quick

# Optional: baton against graphile-worker and pg-boss (installed from npm into a scratch directory).
bench-peers: deps
	$(MAKE) all
	$(MAKE) install-extension
	bench/run.sh --peers

clean:
	$(MAKE) -C extension clean
	$(MAKE) -C worker clean
	$(MAKE) -C console clean
	rm -rf .cluster .cluster-*

# baton — one entry point: build, install, demo, check, bench.
#   make            build the extension, the worker and the console (baton CLI and dashboard)
#   make install    install the extension into PostgreSQL (pg_config), baton-worker and baton into $(PREFIX)/bin
#   make demo       everything end to end on a throwaway cluster
#   make check      all tests (pgTAP, isolation, worker integration and crash tests)
#   make bench      benchmarks (bench/README.md); make bench-quick for a 1-minute subset
#   make up / down  a throwaway cluster (and example workers) to explore
PG_CONFIG ?= pg_config
PREFIX    ?= /usr/local
export PG_CONFIG

.PHONY: all deps extension worker console install install-extension install-worker install-console check demo up down bench bench-quick clean

all: META.json extension worker console

# One version source: VERSION feeds META.json, the control file and the C code.
META.json: META.json.in VERSION
	sed 's/@VERSION@/$(shell cat VERSION)/g' $< > $@

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

check: deps
	$(MAKE) all
	$(MAKE) install-extension
	tests/run.sh

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

clean:
	$(MAKE) -C extension clean
	$(MAKE) -C worker clean
	$(MAKE) -C console clean
	rm -rf .cluster .cluster-*

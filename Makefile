# subcell developer entry points. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the stamp changes whenever the dependency declarations change, so a second `make test` installs nothing
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PIP := $(BIN)/python -m pip
EXTRAS ?= dev,dl,batch,track,zoo,napari

.PHONY: demo test test-all lint bench install clean system-deps

# Debian packages the tests use: Chromium renders the HTML reports, Xvfb + the xcb libraries give napari a real
# screen. Installed when missing and we are root with apt-get (CI, fresh machines); skipped otherwise (those tests
# then skip with the reason).
DEBS := chromium xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 \
	libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s $(DEBS) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null; fi

# Installs go through uv (from PyPI): it downloads and unpacks in parallel, ~50 s against pip's ~200 s for every
# extra on a cold 2-core machine. Bytecode is compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set
# (this machine) nothing compiles it later, and every process compiled every module it imported (`subcell --help`
# 1.1 s against 0.33 s). uv reads no pip configuration, so the wheel folders and constraint files pip is given
# here (where the machine keeps its CPU torch) are passed on; where uv cannot install at all, pip does.
pip_conf = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^.*\.$(1)='\(.*\)'$$/\1/p" | tr ' ' '\n' | sort -u)
UV_ARGS = $(foreach d,$(call pip_conf,find-links),--find-links $(d)) $(foreach c,$(call pip_conf,constraint),-c $(c))

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(PIP) install --quiet uv && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
			$(UV_ARGS) -c constraints.txt -e ".[$(EXTRAS)]"; then :; else \
		echo "uv could not install the environment; installing with pip (slower)"; \
		$(PIP) install --quiet --upgrade pip && $(PIP) install --quiet -c constraints.txt -e ".[$(EXTRAS)]"; fi
	@rm -f $(VENV)/.installed-*
	@touch $@

install: system-deps $(STAMP)

demo: $(STAMP)
	$(BIN)/subcell demo --out demo_output --overwrite

# one worker per core (at most 4), whole files per worker so module fixtures are built once; tests/conftest.py
# gives each worker its share of the torch threads
XDIST := -n auto --maxprocesses 4 --dist loadfile

test: system-deps $(STAMP)
	$(BIN)/python -m pytest $(XDIST)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m ""

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/io/bench_io.py
	$(BIN)/python benchmarks/synth/bench_synth.py
	SUBCELL_TEST_DATA=$${SUBCELL_TEST_DATA:-../shared/data} $(BIN)/python benchmarks/synth/compare_brightfield.py
	$(BIN)/python benchmarks/segment/evaluate_synthetic.py
	$(BIN)/python benchmarks/segment/bench_chunked.py
	bash benchmarks/segment/setup_peer.sh && $(BIN)/python benchmarks/segment/peer_compare.py
	$(BIN)/python benchmarks/labelfree/synthetic_accuracy.py --preset resunet --minutes 15
	$(BIN)/python benchmarks/labelfree/bench_inference.py all --model /tmp/subcell_labelfree_bench/model_resunet_15min_7targets --field /tmp/subcell_labelfree_bench/field11.ome.zarr

clean:
	rm -rf $(VENV) demo_output .pytest_cache .mypy_cache .ruff_cache

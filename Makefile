# cellchain — `make` alone prints this help. Every target sets up .venv on first use.
VENV   := .venv
PY     := $(VENV)/bin/python
MPY    := $(VENV)/bin/micropython
STAMP  := $(VENV)/.installed

.PHONY: help venv test test-cpython test-micropython typecheck lint images sim bench bench-long clean mp32 hil

help:
	@echo "cellchain make targets:"
	@echo "  make sim          run the virtual 16-cell pack (charge to full, discharge to empty)"
	@echo "  make sim GATEWAY=victron   the same with the gateway board on CAN (victron, pylon, pylon13, sma)"
	@echo "  make test         host tests on CPython and the same core tests on the MicroPython Unix port"
	@echo "  make typecheck    mypy over firmware/ and board_defs/ against rp2 and esp32 stubs"
	@echo "  make lint         ruff"
	@echo "  make images       build every (board, role) image with mpy-cross into build/"
	@echo "  make mp32         a 32-bit MicroPython core build for the heap figures (tools/mp32, needs gcc-multilib)"
	@echo "  make hil          the chip tier: the images on emulated RP2040 chains (node + ../shared/rp2emu firmware)"
	@echo "  make bench        quick benchmarks (a few minutes): link, memory, images, reaction, SoC standby"
	@echo "  make bench-long   every benchmark at full size (chip tier, accuracy, board speed: hours)"
	@echo "  ./flash.sh ROLE BOARD [PORT] [--dry-run]   flash one board"

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

test: test-cpython test-micropython

test-cpython: $(STAMP)
	$(PY) -m pytest host_tests

test-micropython: $(STAMP)
	$(MPY) tools/mp_test_runner.py --import-all firmware/core host_tests/core firmware

typecheck: $(STAMP)
	$(PY) tools/typecheck.py

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware board_defs host_tests tools sim bench cellchain chip_tier

mp32: $(STAMP)
	tools/mp32/build.sh

images: $(STAMP)
	$(PY) tools/build_images.py

# GATEWAY=victron|pylon|pylon13|sma adds the gateway board and a virtual inverter (docs/gateway.md)
GATEWAY ?=
sim: $(STAMP)
	$(PY) -m sim demo $(if $(GATEWAY),--gateway $(GATEWAY))

hil: $(STAMP)
	$(PY) -m chip_tier
	$(PY) -m pytest host_tests/test_chip_tier.py -m hil

bench: $(STAMP)
	$(PY) -m bench

bench-long: $(STAMP)
	$(PY) -m bench --long

clean:
	rm -rf build .mypy_cache .pytest_cache

"""The chip tier's runs: which boards, which frames, which clocks, how long (data only).

Each run is a chain Begin -> ... -> End on emulated RP2040s (run_chain.js). Keys:
  chain     roles in chain order (an End image is the pico_w one on the plain-Pico firmware with
            a stand-in ``bluetooth`` module: nothing emulates the Pico W's radio)
  switch    the Begin board's option switches: 0x52 = 9-16 cells (118-byte frames), 0xF2 =
            151-255 cells (198-byte frames), 0x12 = 2-4 cells (58-byte frames); low bits V-balance
  seconds   emulated seconds of the run
  speeds    per-board clock (1.02 = 2 % fast); None = nominal
  ramp      (board, V0, V1, T0, T1): that board's cell input rises V0 -> V1 volts from T0 to T1 s
  cellv     per-board cell volts
  diag      Ctrl-C and ``import diag; diag.show()`` at every REPL after the run, then ``alive``
            seconds at the REPL before it must still answer
  firmware  "RPI_PICO" (stock: ROMFS partition 0 bytes) or "RPI_PICO_ROMFS" (256 KiB ROMFS; the
            images then go to the ROM partition as ``flash.sh --romfs`` puts them)
Every run models flash stalls (FLASH_STALL: erase and program hold the CPU as a W25Q16JV does)
and the PC817 opto edges (PC817_US: turn-on, turn-off in us).

The skewed clocks alternate fast and slow boards, so every hop sees a sender 4 % off its receiver
in one direction or the other.
"""
FLASH_STALL = (45.0, 0.7)      # ms per 4 KiB sector erase, ms per 256-byte page program (typical)
PC817_US = (4, 18)
SKEW = (1.02, 0.98, 1.02, 0.98)
CELL_BOARDS = ("begin", "between", "between", "end")

# V-max of the LiFePO4 preset the End board's settings carry (chip_tier/runner.py: make_settings)
RAMP_VMAX_V = 3.70

RUNS = {
    # 16-cell frames, the whole chain with an End, then the REPL workflow
    "c16": {"chain": CELL_BOARDS, "switch": 0x52, "seconds": 90, "speeds": None, "diag": True,
            "alive": 30},
    "c16_skew": {"chain": CELL_BOARDS, "switch": 0x52, "seconds": 90, "speeds": SKEW, "diag": True},
    # 255-cell frames (198 bytes: the longest a board forwards)
    "c255": {"chain": CELL_BOARDS, "switch": 0xF2, "seconds": 60, "speeds": None, "diag": True},
    "c255_skew": {"chain": CELL_BOARDS, "switch": 0xF2, "seconds": 60, "speeds": SKEW, "diag": True},
    # V-max ramp on the second Between's ADC, timed to the End's charge relay pin: a 2-4 cell pack
    # (the cell count matches the chain, so the End closes its relays), 5 mV/s through V-max
    "ramp": {"chain": CELL_BOARDS, "switch": 0x12, "seconds": 75, "speeds": None, "diag": False,
             "cellv": (3.30, 3.35, 3.60, 3.40), "ramp": (2, 3.60, 3.80, 35.0, 75.0)},
    # the End board's first ten minutes (GCs, state saves with flash stalls) behind a Begin board
    "end10": {"chain": ("begin", "end"), "switch": 0x52, "seconds": 600, "speeds": None, "diag": True},
    # the End's heap with the modules in the ROM partition (flash.sh --romfs)
    "heap_romfs": {"chain": ("begin", "end"), "switch": 0x52, "seconds": 20, "speeds": None,
                   "diag": True, "firmware": "RPI_PICO_ROMFS"},
}

# what `make hil` runs, longest first (two at a time on a 2-core machine)
DEFAULT = ("end10", "c16", "c16_skew", "c255", "c255_skew", "ramp", "heap_romfs")

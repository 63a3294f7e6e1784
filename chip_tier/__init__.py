"""The chip tier: cellchain's built images on emulated RP2040 chains (issue 19).

The images ``make images`` builds run unchanged on a real MicroPython v1.28.0 rp2 firmware with
the RP2040 emulated (``chip_tier/emu``, grown from ``../shared/rp2emu``), boards chained through an
inverting opto model, each board on its own clock. ``scenarios`` names the runs, ``runner`` builds
and runs them (in parallel, cached by the firmware they ran), ``report`` turns a run into per-board
figures (frames good/bad/cut at every hop, LED pulses, relay edges, GCs, cycle and per-character
CPU, awake and light-sleep fractions, heap), which host_tests/test_chip_tier.py asserts on.
Labelled "emulated RP2040 (zero-wait flash)": see chip_tier/README.md for what it does not model.
"""

"""Link benchmark: how long a frame takes from Begin to End with all aggregates checked, and
how many cycles until every cell's detail has reached End, for 4/16/64/255 cells.

Measured on sim.wire in virtual time with the real role objects: the latency is the virtual
time between Begin handing its frame to the transmitter and End finishing section A (its CRC
checked), i.e. the characters and bit times the chain actually waits for - not a formula.
"""
from core import options
from sim.wire import Chain, FakeCell, FakePair

SIZES = (4, 16, 64, 255)
BAUD = 9600
CYCLE_MS = 1000
PROC_BITS = 2          # per-character processing delay a board adds before re-sending (bit times)
TARGET_LATENCY_MS = {16: 150, 255: 1000}


def _chain(n, baud, proc_bits):
    sw = options.word_for(options.range_code_for_cells(n), 3500)
    cells = [FakeCell(3200 + (i * 7) % 300, 200 + i % 50) for i in range(n)]
    return Chain(n, sw, cells, FakePair(1000, -2000), baud=baud, proc_bits=proc_bits, cycle_ms=CYCLE_MS)


def measure(n, baud=BAUD, proc_bits=PROC_BITS, max_cycles=20):
    ch = _chain(n, baud, proc_bits)
    detail_cycles = None
    latency_ns = None
    for _ in range(max_cycles):
        ch.run_cycles(1)
        ages = ch.end.snap.cell_age
        if detail_cycles is None and all(ages[i] != 255 for i in range(n)):
            detail_cycles = len(ch.b_done_ns)         # complete frames End needed
        if detail_cycles is not None and len(ch.b_done_ns) >= 3:
            break
    # steady state: the last frame of Begin's that End has completely
    k = max(ch.b_done_ns)
    latency_ns = ch.a_done_ns[k] - ch.frame_start_ns[k]
    bit_ns = ch.wires[0].bit_ns
    frame_ns = ch.b_done_ns[k] - ch.frame_start_ns[k]
    return {
        "aggregates_latency_ms": round(latency_ns / 1e6, 2),
        "aggregates_latency_bits": latency_ns // bit_ns,
        "frame_latency_ms": round(frame_ns / 1e6, 2),
        "detail_cycles": detail_cycles,
        "comm_ok": bool(ch.end.snap.comm_ok),
        "frame_bytes": ch.wires[0].chars // max(1, len(ch.frame_start_ns)),
        # section A is 35 characters; every board after Begin but End re-sends with this delay
        "hop_delay_bits": (latency_ns // bit_ns - 35 * 10 - proc_bits) // (n - 2) if n > 2 else 0,
    }


def run(results):
    cells = {}
    rows = []
    for n in SIZES:
        m = measure(n)
        cells[str(n)] = m
        target = TARGET_LATENCY_MS.get(n)
        rows.append([n, m["frame_bytes"], m["aggregates_latency_bits"], m["aggregates_latency_ms"],
                     target if target else "-", m["frame_latency_ms"], m["detail_cycles"],
                     "yes" if m["comm_ok"] else "NO"])
    results["link"] = {"baud": BAUD, "cycle_ms": CYCLE_MS, "proc_bits": PROC_BITS, "cells": cells}
    from bench import table
    table("link (virtual wire, %d baud, %d ms cycle, %d bit times processing per hop)" % (BAUD, CYCLE_MS, PROC_BITS),
          ["cells", "frame B", "aggr bits", "aggr ms", "target ms", "frame ms", "detail cycles", "comm ok"], rows)
    return results

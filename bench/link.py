r"""Link benchmark: how long a frame takes from Begin to End with all aggregates checked, and
how many cycles until every cell's detail has reached End, for 4/16/64/255 cells.

Measured on sim.wire in virtual time with the real role objects: the latency is the virtual
time between Begin handing its frame to the transmitter and End finishing section A (its CRC
checked), i.e. the characters and bit times the chain actually waits for - not a formula.

Beside it, computed (formulas, docs/benchmarks.md) for the same N, baud and per-hop processing:
* ``smartbms123``: the 123\SmartBMS's own scheme - a fixed 58-byte packet carrying the
  aggregates and one cell's detail, received whole by each board before it is sent on (store
  and forward): latency (N-1) x (58 x 10 + proc) bit times; every cell's detail after N cycles.
* ``store_forward``: store-and-forward of a growing frame - board k receives the whole frame,
  appends its cell (5 bytes) and sends 38 + 5k bytes on; End has the aggregates when the last
  frame has arrived: sum over k = 1..N-1 of ((38 + 5k) x 10 + proc) bit times; detail in 1 cycle
  (if the frame fits the cycle at all: ``fits_cycle``).
* ``floor``: the wire's physical floor - End cannot check the aggregates before section A (35
  characters, 350 bits) has crossed the last hop, and each of the N-2 boards in between must see
  at least one bit before it can repeat it: 350 + (N-2) bit times. Every cell's detail needs
  (38 + 5N) x 10 bits to cross the last (slowest, fullest) hop: ceil of that / (baud x cycle)
  cycles.
"""
from sim import fw
from sim.wire import Chain, FakeCell, FakePair

frame = fw.core("frame")
options = fw.core("options")

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
        "hop_delay_bits": (latency_ns // bit_ns - SECTION_A * 10 - proc_bits) // (n - 2) if n > 2 else 0,
    }


SMARTBMS_PACKET = 58
SECTION_A = frame.A_LEN                 # section A: header, currents, aggregates, CRC_A
HEADER = frame.frame_len(0)             # a frame with no detail slots
PER_CELL = frame.SLOT_LEN               # one cell's detail slot


def _fig(bits, baud, detail_cycles, **extra):
    d = {"latency_bits": int(bits), "latency_ms": round(bits * 1000.0 / baud, 2), "detail_cycles": int(detail_cycles)}
    d.update(extra)
    return d


def compare(n, baud=BAUD, proc_bits=PROC_BITS, cycle_ms=CYCLE_MS):
    """The computed figures of the other schemes for n cells (bit times and ms)."""
    hops = n - 1
    sb = hops * (SMARTBMS_PACKET * 10 + proc_bits)
    sf = sum((HEADER + PER_CELL * k) * 10 + proc_bits for k in range(1, n))
    cycle_bits = baud * cycle_ms // 1000
    last_hop = (HEADER + PER_CELL * n) * 10
    return {
        "smartbms123": _fig(sb, baud, n, packet_bytes=SMARTBMS_PACKET),
        "store_forward": _fig(sf, baud, 1, last_frame_bytes=HEADER + PER_CELL * n,
                              fits_cycle=sf <= cycle_bits),
        "floor": _fig(SECTION_A * 10 + max(0, n - 2), baud, -(-last_hop // cycle_bits)),
    }


def run(results):
    cells = {}
    rows = []
    crow = []
    for n in SIZES:
        m = measure(n)
        m["compare"] = c = compare(n)
        cells[str(n)] = m
        crow.append([n, "%d / %.0f" % (m["aggregates_latency_bits"], m["aggregates_latency_ms"]), m["detail_cycles"]]
                    + ["%d / %.0f" % (c[k]["latency_bits"], c[k]["latency_ms"]) + ("" if c[k].get("fits_cycle", True)
                                                                                    else " (>cycle)")
                       for k in ("smartbms123", "store_forward", "floor")]
                    + [c["smartbms123"]["detail_cycles"], c["floor"]["detail_cycles"]])
        target = TARGET_LATENCY_MS.get(n)
        rows.append([n, m["frame_bytes"], m["aggregates_latency_bits"], m["aggregates_latency_ms"],
                     target if target else "-", m["frame_latency_ms"], m["detail_cycles"],
                     "yes" if m["comm_ok"] else "NO"])
    results["link"] = {"baud": BAUD, "cycle_ms": CYCLE_MS, "proc_bits": PROC_BITS, "cells": cells}
    from bench import table
    table("link (virtual wire, %d baud, %d ms cycle, %d bit times processing per hop)" % (BAUD, CYCLE_MS, PROC_BITS),
          ["cells", "frame B", "aggr bits", "aggr ms", "target ms", "frame ms", "detail cycles", "comm ok"], rows)
    table("link comparison: Begin->End aggregates latency, bit times / ms at %d baud (others computed)" % BAUD,
          ["cells", "cellchain", "detail cyc", "123SmartBMS 58 B", "store&fwd growing", "wire floor",
           "123 detail cyc", "floor detail cyc"], crow)
    return results

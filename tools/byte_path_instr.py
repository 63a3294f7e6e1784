"""Instructions of the Between's receive handler per forwarded character, as counted board time
charges them (sim/opcount.py, virtual link ends as the PIO HAL methods, sim/board_time.py):

    .venv/bin/python tools/byte_path_instr.py [W] [POSITION]        (repo root; default 32 100)

Feeds one W-slot frame (W=32: 198 characters, a chain of 32 or more cells) character by
character through roles.LinkPort.poll, one handler call per character as on a board, and
prints one JSON line: median / max instructions per call, the frame offset of the costliest
and the median board us at NS_PER_INSTR.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from sim import board_time, fw, opcount, wire  # noqa: E402
from roles import LinkPort  # noqa: E402

codec = fw.core("codec")
frame = fw.core("frame")


def main():
    w = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    pos = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    c = opcount.Counter([os.path.join(HERE, "firmware") + os.sep], costs={
        wire.WireRx.read.__code__: board_time.HAL_INSTR["rx_read"],
        wire.Wire.write_byte.__code__: board_time.HAL_INSTR["tx_write_byte"]})
    rx = wire.WireRx(True)
    tx = wire.Wire(wire.Scheduler())
    port = LinkPort(rx, tx, lambda ev: None)
    port.fw.set_own(3300, 250, 0)
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, w, 1, 0, pos - 1, 1)
    got = []
    for _rep in range(2):                # the second frame: warm state, as in a running chain
        got = []
        for i in range(n):
            rx.q.append(buf[i])
            got.append(c.run(port.poll))
        rx.q.append(codec.GAP)
        port.poll()
    med = sorted(got)[n // 2]
    ns = board_time.NS_PER_INSTR["rp2040"]
    print(json.dumps({"w": w, "position": pos, "chars": n, "median_instr": med, "max_instr": max(got),
                      "max_at_offset": got.index(max(got)), "frame_instr": sum(got),
                      "median_board_us": round(med * ns / 1000.0, 1)}))


if __name__ == "__main__":
    main()

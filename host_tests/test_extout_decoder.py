"""Host decoder for the extended output (CPython): golden packets, encoder -> decoder round trips,
resynchronisation, rejected data, the serial burst reader and the CLI."""
import io
import json
import os
import pty
import subprocess
import sys
import threading
import time
import tty

from hypothesis import given, settings as hsettings, strategies as st

from cellchain import extout as dec
from core import extout as enc
from core import settings
from core.snapshot import PackSnapshot, SensorFlags
from test_extout import GOLDEN_A, GOLDEN_B, GOLDEN_C, Brain, fill, lfp16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stream(n, state=None):
    """n packets from the encoder for one state (default: the 16-cell LiFePO4 pack)."""
    snap, b, s = state if state is not None else lfp16()
    e = enc.ExtOutEncoder()
    return b"".join(bytes(e.encode(snap, b, s)) for _ in range(n))


def decode_all(data):
    msgs = []
    d = dec.Decoder(msgs.append)
    return list(d.feed_file(data)), d, msgs


# --- golden packets (bytes written out by hand in host_tests/core/test_extout.py) -------------

def test_golden_a_decodes_to_the_state():
    p = dec.decode_packet(GOLDEN_A)
    assert p["pack_v"] == 52.805
    assert (p["charge_a"], p["discharge_a"], p["battery_a"]) == (12.5, 3.25, 9.25)
    assert (p["min_cell_v"], p["min_cell"], p["max_cell_v"], p["max_cell"]) == (3.28, 3, 3.325, 9)
    assert (p["min_temp_c"], p["min_temp_cell"]) == (21.672, 5)     # 296 x 0.857 - 232
    assert (p["max_temp_c"], p["max_temp_cell"]) == (25.957, 12)    # 301 x 0.857 - 232
    assert (p["cell"], p["cells"], p["cell_v"], p["cell_temp_c"]) == (1, 16, 3.3, 25.1)
    assert p["charge_allowed"] and p["discharge_allowed"] and not p["soc_not_calibrated"]
    assert not any(p[k] for k in ("comm_error", "under_voltage", "over_voltage", "under_temp", "over_temp"))
    assert (p["energy_in_today_wh"], p["stored_wh"], p["energy_out_today_wh"]) == (3456, 10800, 1234)
    assert (p["soc_pct"], p["energy_in_kwh"], p["energy_out_kwh"]) == (76, 1234, 1100)
    assert (p["key"], p["value"]) == (0, 98)
    assert p["capacity_kwh"] == 14.8
    assert (p["vmin_v"], p["vmax_v"], p["vbal_v"]) == (2.9, 3.7, 3.4)


def test_golden_b_and_c():
    p = dec.decode_packet(GOLDEN_B)
    assert (p["charge_a"], p["discharge_a"], p["battery_a"]) == (-1.0, None, -1.0)
    assert p["flags"] == 0xB2
    assert p["discharge_allowed"] and not p["charge_allowed"]
    assert p["over_voltage"] and p["under_temp"] and p["soc_not_calibrated"]
    assert (p["key"], p["value"]) == (16, 0x26)
    assert (p["cell"], p["cells"]) == (4, 4)
    assert p["min_temp_c"] == round(265 * 0.857 - 232, 3)
    p = dec.decode_packet(GOLDEN_C)
    assert p["comm_error"] and p["cells"] == 0 and p["cell"] == 0
    assert p["charge_a"] is None and p["min_temp_c"] == -232.0


def test_golden_stream_through_file_decoder():
    data = GOLDEN_A + GOLDEN_B + GOLDEN_C
    packets, d, msgs = decode_all(data)
    assert [p["offset"] for p in packets] == [0, 58, 116]
    assert d.rejected == 0 and msgs == []


# --- round trips -------------------------------------------------------------------------------

def test_round_trip_whole_round():
    snap, b, s = lfp16()
    packets, d, msgs = decode_all(stream(45))
    assert len(packets) == 45 and d.rejected == 0 and msgs == []
    assert packets[17]["round"] is None            # key 18 arrives in packet 19
    r = packets[18]["round"]
    assert r == packets[44]["round"]
    assert r["soh_pct"] == 98 and r["charge_efficiency_pct"] == 100
    assert r["vlow_v"] == 2.96                     # V-min 2.9 V + 2 %
    assert r["vnom_v"] == 3.3 and r["vfull_v"] == 3.4
    from core.version import FIRMWARE_VERSION
    assert r["firmware"] == "%d.%d.%d" % FIRMWARE_VERSION
    assert r["charge_cycles"] == 300
    assert (r["energy_in_kwh"], r["energy_out_kwh"]) == (1234, 1100)
    assert r["load_relay"] and r["charge_relay"] and not r["early_warning"]
    assert [p["cell"] for p in packets[:17]] == list(range(1, 17)) + [1]
    assert d.rounds.rounds == 2


def test_round_needs_key_zero_first():
    snap, b, s = lfp16()
    e = enc.ExtOutEncoder()
    e.next_key = 5                                  # start mid-round, like a reader joining late
    data = b"".join(bytes(e.encode(snap, b, s)) for _ in range(19 + 14))
    packets, d, _ = decode_all(data)
    assert all(p["round"] is None for p in packets[:32])
    assert packets[32]["round"] is not None and d.rounds.rounds == 1


cells_st = st.integers(min_value=1, max_value=255)


@hsettings(max_examples=300, deadline=None)
@given(n=cells_st, pack_mv=st.integers(-10, 10 ** 8), charge=st.integers(-10 ** 7, 10 ** 7),
       discharge=st.integers(-10 ** 7, 10 ** 7), tmin=st.integers(-3000, 2000),
       soc=st.integers(-100, 12000), wh=st.integers(-10 ** 5, 2 * 10 ** 10),
       cell_mv=st.integers(0, 6000), cell_dc=st.integers(-2500, 1500), start=st.integers(0, 300))
def test_round_trip_values_within_one_step(n, pack_mv, charge, discharge, tmin, soc, wh, cell_mv, cell_dc, start):
    snap = PackSnapshot()
    fill(snap, [cell_mv] * n, [cell_dc] * n)
    snap.pack_mv = pack_mv
    snap.min_temp_dc = tmin
    b = Brain()
    b.charge_ma, b.discharge_ma, b.current_ma = charge, discharge, charge - discharge
    b.soc_c = soc
    b.energy_in_wh = b.energy_out_wh = b.stored_wh = b.energy_in_today_wh = wh
    s = settings.preset(settings.LIFEPO4)
    e = enc.ExtOutEncoder()
    e.next_cell = start
    p = dec.decode_packet(e.encode(snap, b, s))
    # the pack field is the sum of the cells as sent (5 mV each), whatever section A summed
    assert p["pack_v"] == round(n * ((cell_mv + 2) // 5) * 0.005, 3)
    for key, ma in (("charge_a", charge), ("discharge_a", discharge), ("battery_a", charge - discharge)):
        want = max(-8191.875, min(8191.875, ma / 1000))
        assert abs(p[key] - want) <= 0.0625 + 1e-9
    lo_c = -232.0
    want_t = max(tmin / 10, lo_c)
    assert abs(p["min_temp_c"] - want_t) <= 0.43
    assert abs(p["cell_temp_c"] - max(cell_dc / 10, lo_c)) <= 0.43
    assert abs(p["cell_v"] - cell_mv / 1000) <= 0.0025 + 1e-9
    assert 1 <= p["cell"] <= p["cells"] == n
    assert p["soc_pct"] == min(max((soc + 50) // 100, 0), 100)
    vnom_r = enc.reader_vnom_mv(s.capacity_ah, s.vnom_mv, n)
    assert p["stored_wh"] == min(max(enc.scale(wh, vnom_r, s.vnom_mv) if wh > 0 else 0, 0), 0xFFFFFF)
    assert p["energy_in_kwh"] == min(max(wh // 1000, 0), 0xFFFFFF)


# --- rejected data and resynchronisation ------------------------------------------------------

def test_checksum_error_is_rejected_and_the_rest_decoded():
    data = bytearray(stream(5))
    data[2 * 58 + 20] ^= 0x10
    packets, d, msgs = decode_all(bytes(data))
    assert [p["offset"] for p in packets] == [0, 58, 174, 232]
    assert d.checksum_errors == 1 and d.truncated == 0
    assert len(msgs) == 1 and "checksum" in msgs[0] and "116" in msgs[0]


def test_checksum_error_in_last_and_first_packet():
    data = bytearray(stream(3))
    data[57] ^= 1
    data[-1] ^= 1
    packets, d, msgs = decode_all(bytes(data))
    assert [p["offset"] for p in packets] == [58]
    # first: no sync yet -> skipped as "no valid packet"; last: synced -> checksum error
    assert d.checksum_errors == 1 and d.skipped_bytes == 58


def test_dropped_byte_costs_one_truncated_packet():
    data = bytearray(stream(6))
    del data[3 * 58 + 10]
    packets, d, msgs = decode_all(bytes(data))
    assert len(packets) == 5
    assert d.truncated == 1 and d.checksum_errors == 0
    assert any("truncated" in m for m in msgs)


def test_capture_starting_and_ending_mid_packet():
    full = stream(6)
    data = full[20:-7]
    packets, d, msgs = decode_all(data)
    assert len(packets) == 4
    assert d.truncated == 2
    assert packets[0]["offset"] == 38


def test_garbage_only_and_empty():
    import random
    rnd = random.Random(7)
    junk = bytes(rnd.randrange(256) for _ in range(2000))
    packets, d, msgs = decode_all(junk)
    assert packets == [] and d.skipped_bytes == 2000 and msgs
    packets, d, msgs = decode_all(b"")
    assert packets == [] and d.rejected == 0
    packets, d, msgs = decode_all(GOLDEN_A[:30])
    assert packets == [] and d.truncated == 1


def test_long_random_garbage_yields_no_packet():
    import random
    rnd = random.Random(11)
    junk = bytes(rnd.randrange(256) for _ in range(300000))
    packets, d, _ = decode_all(junk)
    assert packets == [] and d.skipped_bytes == len(junk)


def test_foreign_sign_bytes_sync_on_three_checksums():
    def foreign(p):
        p = bytearray(p)
        p[3] = p[6] = p[9] = 0x00
        p[57] = sum(p[:57]) & 0xFF
        return bytes(p)

    data = b"\x01\x02" + b"".join(foreign(stream(1)) for _ in range(4))
    packets, d, _ = decode_all(data)
    assert len(packets) == 4 and d.truncated == 1 and packets[0]["charge_a"] == 12.5
    packets, d, _ = decode_all(foreign(GOLDEN_A) + foreign(GOLDEN_B))   # only two: not enough
    assert packets == []


def test_garbage_between_packets():
    data = stream(2) + b"\x00\xff\x13" * 50 + stream(3)
    packets, d, _ = decode_all(data)
    assert len(packets) == 5 and d.skipped_bytes == 150


def test_decode_packet_errors():
    for bad in (GOLDEN_A[:57], GOLDEN_A + b"\x00", b""):
        try:
            dec.decode_packet(bad)
        except dec.PacketError as e:
            assert "truncated" in str(e)
        else:
            raise AssertionError("accepted %d bytes" % len(bad))
    broken = bytearray(GOLDEN_A)
    broken[57] ^= 0xFF
    try:
        dec.decode_packet(broken)
    except dec.PacketError as e:
        assert "checksum" in str(e)
    else:
        raise AssertionError("accepted a bad checksum")


def test_odd_sign_bytes_and_no_pair():
    p = bytearray(GOLDEN_A)
    p[3] = 0x00          # readers disagree on this; we read it as positive
    p[47] = 3            # < 25: no pair
    p[57] = sum(p[:57]) & 0xFF
    out = dec.decode_packet(p)
    assert out["charge_a"] == 12.5 and out["key"] is None and out["value"] is None


# --- serial: gap-delimited bursts -------------------------------------------------------------

class FakeSerial:
    """Scripted port: (time_s, bytes) arrivals; read() returns what arrived by now, advancing a
    fake clock by the timeout when nothing did; OSError after the script."""

    def __init__(self, events, timeout=0.02):
        self.events = list(events)
        self.t = 0.0
        self.timeout = timeout

    def clock(self):
        return self.t

    def read(self, n):
        if not self.events and self.t > 5:
            raise OSError("unplugged")
        if self.events and self.events[0][0] <= self.t:
            return self.events.pop(0)[1]
        self.t += self.timeout
        return b""


def test_read_bursts_splits_on_gaps():
    pkts = [bytes(p) for p in (GOLDEN_A, GOLDEN_B, GOLDEN_C)]
    events = []
    for i, p in enumerate(pkts):
        t0 = 0.3 + i * 1.0
        events += [(t0, p[:20]), (t0 + 0.016, p[20:40]), (t0 + 0.032, p[40:])]
    ser = FakeSerial([(0.0, GOLDEN_A[40:])] + events)
    bursts = []
    try:
        for b_ in dec.read_bursts(ser, 0.2, clock=ser.clock):
            bursts.append(b_)
    except dec.PortClosed:
        pass
    assert bursts == [GOLDEN_A[40:]] + pkts
    msgs = []
    d = dec.Decoder(msgs.append)
    out = []
    for i, b_ in enumerate(bursts):
        out += list(d.feed_burst(b_, first=(i == 0)))
    assert len(out) == 3 and d.rejected == 0 and "ignored" in msgs[0]


def test_feed_burst_rejects_and_splits():
    msgs = []
    d = dec.Decoder(msgs.append)
    bad = bytearray(GOLDEN_A)
    bad[5] ^= 1
    assert list(d.feed_burst(bytes(bad))) == [] and d.checksum_errors == 1
    assert list(d.feed_burst(GOLDEN_A[:40])) == [] and d.truncated == 1
    got = list(d.feed_burst(GOLDEN_A + GOLDEN_B))           # no gap between two packets
    assert len(got) == 2 and "offset" not in got[0]
    assert len(msgs) == 3


# --- CLI ----------------------------------------------------------------------------------------

def run_main(args):
    out, err = io.StringIO(), io.StringIO()
    rc = dec.main(args, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_file_json_lines(tmp_path):
    f = tmp_path / "cap.bin"
    f.write_bytes(stream(20))
    rc, out, err = run_main([str(f), "--hex"])
    lines = [json.loads(x) for x in out.splitlines()]
    assert rc == 0 and len(lines) == 20
    assert lines[0]["n"] == 1 and lines[0]["pack_v"] == 52.805 and len(lines[0]["hex"]) == 116
    assert lines[19]["round"]["soh_pct"] == 98
    assert "20 packets decoded, 0 checksum errors, 0 truncated" in err
    rc, out, err = run_main([str(f), "--count", "5"])         # issue 22: --count holds for files
    assert rc == 0 and len(out.splitlines()) == 5 and "5 packets decoded" in err


def test_cli_rejections_give_status_1_and_counts(tmp_path):
    data = bytearray(stream(4))
    data[70] ^= 0x40
    f = tmp_path / "cap.bin"
    f.write_bytes(bytes(data) + GOLDEN_A[:11])
    rc, out, err = run_main([str(f)])
    assert rc == 1 and len(out.splitlines()) == 3
    assert "1 checksum errors, 1 truncated packets" in err and "Traceback" not in err
    f.write_bytes(b"\x55" * 500)
    rc, out, err = run_main([str(f)])
    assert rc == 1 and out == "" and "no valid packet" in err


def test_cli_missing_source():
    rc, out, err = run_main(["/nonexistent/capture.bin"])
    assert rc == 2 and "no such file or port" in err
    rc, out, err = run_main(["--port", "/dev/cellchain-no-such-port"])
    assert rc == 2 and "cannot open port" in err


def test_cli_as_module_reads_stdin():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "firmware")]))
    r = subprocess.run([sys.executable, "-m", "cellchain.extout", "-"], input=GOLDEN_A + GOLDEN_B[:9],
                       capture_output=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert json.loads(r.stdout.decode().splitlines()[0])["pack_v"] == 52.805
    assert b"truncated" in r.stderr and b"Traceback" not in r.stderr


def test_cli_reads_a_serial_port():
    master, slave = pty.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    pkts = [GOLDEN_A, GOLDEN_B, GOLDEN_C]

    def writer():
        time.sleep(0.2)
        for p in pkts:
            os.write(master, p)
            time.sleep(0.25)

    t = threading.Thread(target=writer)
    t.start()
    try:
        rc, out, err = run_main([name, "--gap-ms", "100", "--count", "3", "--seconds", "5"])
    finally:
        t.join()
        os.close(master)
        os.close(slave)
    lines = [json.loads(x) for x in out.splitlines()]
    assert rc == 0, err
    assert [x["cells"] for x in lines] == [16, 4, 0]


def test_sim_capture_style_bytes_decode():
    """The virtual pack's capture (sim.hw.ByteCapture) holds whole packets back to back."""
    snap, b, s = lfp16()
    snap.s1_flags = SensorFlags.PRESENT
    packets, d, _ = decode_all(stream(3, (snap, b, s)))
    assert len(packets) == 3 and d.rejected == 0

"""Per-board figures of one chip-tier run (run_chain.js's result.json), for the tests and the bench.

    rep = analyse(path)        # {"run": ..., "boards": [per-board dict, ...]}

Per board: boots and resets; the frames it sent (its LINK_OUT decoded with the project's own
core.codec.Decoder, each frame checked with core.crc: good / bad, and cut = shorter than its
length byte says), counted from ``SETTLE_S`` on (boot is left out: a board that starts mid-frame
may see half a frame); its own link counters as the firmware reports them at the REPL
(``CNT``); LED pulses; relay pin edges; garbage collections and flash stalls; awake and
light-sleep fractions; CPU per received character (the awake burst each received character
starts); the loop's cycle times (``LOOP``, timed by the firmware with ticks_us); the heap after
a collection (``HEAP``); whether the REPL still answered after the idle time (``ALIVE``).
All figures: emulated RP2040 (zero-wait flash).
"""
import json
import os
import re
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = 125e6                 # clk_sys of the firmware (125 MHz)
SETTLE_S = 10.0            # boot and the first frames left out of the frame figures
BAUD = 9600


def _core():
    from sim import fw      # the host tools' one door into firmware's core
    return fw.core("codec"), fw.core("crc"), fw.core("frame")


def decode_frames(edges):
    """Frames on one LINK_OUT pin (edges [[ns, level]]; the pin is inverted: idle low). Each:
    {"t": s of its first character, "bytes": [...], "framing": n}."""
    codec, _, _ = _core()
    dec = codec.Decoder(baud=BAUD, invert=False, gap_bits=30, tick_hz=10 ** 9)
    frames = []
    cur = None
    t_prev = None
    for t, lvl in edges:
        line = 0 if lvl else 1
        t = int(t)
        if t_prev is None:
            t_prev = t
            dec.level = line
            continue
        r = dec.feed(t - t_prev, line)
        t_prev = t
        if r >= 0 or r == codec.FRAMING:
            if cur is None:
                cur = {"t": t / 1e9, "bytes": [], "framing": 0}
            if r >= 0:
                cur["bytes"].append(r)
            else:
                cur["framing"] += 1
        if dec.gap:
            dec.gap = False
            if cur:
                frames.append(cur)
                cur = None
    if t_prev is not None:
        r = dec.feed(10 ** 9, dec.level)
        if r >= 0 and cur:
            cur["bytes"].append(r)
    if cur:
        frames.append(cur)
    return frames


def check_frame(b):
    """(verdict, length expected): "good", "bad" (a CRC or framing error), "cut" (shorter than
    its W byte says)."""
    _, crc, frame = _core()
    b = bytes(b)
    if len(b) < frame.O_CRC_A + 2 or b[0] != frame.SYNC:
        return "cut" if len(b) < frame.O_CRC_A + 2 else "bad", 0
    n = frame.frame_len(b[frame.O_W])
    if crc.crc16(b, 0, frame.O_CRC_A) != ((b[frame.O_CRC_A] << 8) | b[frame.O_CRC_A + 1]):
        return "bad", n
    if len(b) < n:
        return "cut", n
    if len(b) > n or crc.crc16(b, frame.O_BRK, n - 2) != ((b[n - 2] << 8) | b[n - 1]):
        return "bad", n
    return "good", n


def pulses(edges, t0=0.0, t1=1e9):
    """Start times (s) and widths (ms) of the high pulses of a pin that start in [t0, t1)."""
    out = []
    up = None
    for t, lvl in edges:
        t = t / 1e9
        if lvl and up is None:
            up = t
        elif not lvl and up is not None:
            if t0 <= up < t1:
                out.append((up, (t - up) * 1000.0))
            up = None
    return out


_ERROR = re.compile(r"Traceback|\w+Error\b|cellchain \S+ error:|transport error|could not")
_CNT = re.compile(r"^CNT (\{.*\})", re.M)
_LOOP = re.compile(r"^LOOP ([\d ]+)$", re.M)
_HEAP = re.compile(r"^HEAP (\d+) (\d+)", re.M)
_ALIVE = re.compile(r"^ALIVE (\d+)", re.M)
_LOOP_KEYS = ("cycles", "overruns", "last_cycle_us", "max_cycle_us", "awake_permille", "awake_avg_permille",
              "sleeps", "light_sleeps", "sleep_errors")


def _repl(text):
    text = text.replace("\r", "")
    out = {}
    m = _CNT.search(text)
    if m:
        try:
            out["cnt"] = json.loads(m.group(1).replace("'", '"').replace("True", "true").replace("False", "false"))
        except ValueError:
            out["cnt"] = None
    m = _LOOP.search(text)
    if m:
        vals = [int(x) for x in m.group(1).split()]
        out["loop"] = dict(zip(_LOOP_KEYS, vals, strict=False))
    m = _HEAP.search(text)
    if m:
        out["heap_alloc"], out["heap_free"] = int(m.group(1)), int(m.group(2))
    m = _ALIVE.search(text)
    out["alive"] = m is not None
    out["traceback"] = "Traceback" in text
    return out


def _rx_char_ms(chip, t0):
    """The awake burst each received character starts (IRQ -> scheduled handler -> back to WFE),
    ms: median, p90, max."""
    import bisect
    bursts = chip["bursts"]
    starts = [b[0] for b in bursts]
    got = []
    for t, _cnt, _cyc in chip["rx"]:
        if t < t0 * 1e9:
            continue
        k = bisect.bisect_left(starts, t - 2000)
        if k < len(bursts) and bursts[k][0] - t < 50000:
            got.append(bursts[k][1] / HZ * 1e3)
    if not got:
        return None
    got.sort()
    return {"median": round(got[len(got) // 2], 3), "p90": round(got[int(len(got) * 0.9)], 3),
            "max": round(got[-1], 3), "n": len(got)}


def board(chip, seconds, settle=SETTLE_S):
    """Figures of one board of a run."""
    speed = chip.get("speed") or 1.0
    r = {"name": chip["name"], "role": chip["role"], "speed": speed, "boots": chip["boots"],
         "resets": chip["resets"]}
    frames = [f for f in decode_frames(chip["pins"].get("0", [])) if settle <= f["t"] < seconds]
    verdicts = {"good": 0, "bad": 0, "cut": 0}
    for f in frames:
        v, _ = check_frame(f["bytes"])
        if f["framing"] and v == "good":
            v = "bad"
        verdicts[v] += 1
    r["sent"] = verdicts
    r["sent_total"] = len(frames)
    ps = [p for p in chip["perSecond"] if p["t"] > settle]
    if ps:
        aw = [p["awakeCycles"] / (HZ * speed) for p in ps]
        r["awake_fraction"] = round(sum(aw) / len(aw), 4)
        r["awake_fraction_max"] = round(max(aw), 4)
        # light sleep proper: the PIO clock gated (a WFE with SLEEPDEEP set but every clock
        # running, as MicroPython leaves it after a light sleep, is ordinary idle)
        r["asleep_fraction"] = round(sum(p.get("lightNs", p["deepNs"]) for p in ps) / (len(ps) * 1e9), 4)
        r["idle_fraction"] = round(max(0.0, 1.0 - r["awake_fraction"] - r["asleep_fraction"]), 4)
    led = pulses(chip["pins"].get("25", []), settle, seconds)
    r["led_pulses"] = len(led)
    r["led_pulse_ms"] = (round(min(w for _, w in led), 1), round(max(w for _, w in led), 1)) if led else None
    r["charge_relay"] = [(round(t / 1e9, 3), lvl) for t, lvl in chip["pins"].get("16", [])]
    r["load_relay"] = [(round(t / 1e9, 3), lvl) for t, lvl in chip["pins"].get("17", [])]
    r["gc"] = [(round(g[0] / 1e9, 3), round(g[1] / 1e6, 2)) for g in chip["gc"]]
    r["stalls"] = [(round(s[0] / 1e9, 3), round(s[1] / 1e6, 2), s[2]) for s in chip.get("stalls", [])]
    r["rx_fifo_max"] = chip["sm"][1]["maxRx"] if len(chip["sm"]) > 1 else 0
    r["rx_drops"] = chip["sm"][1]["rxDrops"] if len(chip["sm"]) > 1 else 0
    r["rx_char_ms"] = _rx_char_ms(chip, settle)
    win = [b for b in chip["bursts"] if b[0] >= settle * 1e9]
    r["largest_bursts_ms"] = sorted((round(b[1] / HZ * 1e3, 2) for b in win), reverse=True)[:5]
    r.update(_repl(chip.get("repl", "")))
    r["console_errors"] = [ln.strip() for ln in chip["out"].splitlines() if _ERROR.search(ln)][:10]
    return r


def analyse(path):
    """The run at ``path`` (result.json): {"run": its arguments, "meta": meta.json, "boards": [...]}."""
    with open(path) as f:
        res = json.load(f)
    meta = {}
    mp = os.path.join(os.path.dirname(path), "meta.json")
    if os.path.isfile(mp):
        with open(mp) as f:
            meta = json.load(f)
    seconds = res["args"]["seconds"]
    boards = [board(c, seconds) for c in res["chips"]]
    # frames each board received: what its upstream neighbour sent
    for k in range(1, len(boards)):
        boards[k]["received"] = boards[k - 1]["sent"]
    return {"run": res["args"], "meta": meta, "wall_s": res.get("wall_s"), "boards": boards,
            "edges_per_link": [L["edges"] for L in res.get("links", [])]}


def ramp_delay_s(rep, vmax_v):
    """V-max ramp: seconds from the true crossing (the ramped board's input reaching ``vmax_v``)
    to the End's charge relay pin going low; None if the relay never closed before or never
    opened after."""
    b, v0, v1, t0, t1 = [float(x) for x in rep["run"]["ramp"].split(":")]
    cross = t0 + (vmax_v - v0) / (v1 - v0) * (t1 - t0)
    end = rep["boards"][-1]
    closed = [t for t, lvl in end["charge_relay"] if lvl == 1 and t < cross]
    opened = [t for t, lvl in end["charge_relay"] if lvl == 0 and t >= cross]
    if not closed or not opened:
        return None, cross
    return opened[0] - cross, cross


def median(xs):
    return statistics.median(xs) if xs else None

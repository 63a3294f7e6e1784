"""``cellchain`` / ``python -m cellchain``: talk to an End board (or the virtual pack) over the
app protocol (docs/ble-protocol.md).

    cellchain scan
    cellchain --socket 127.0.0.1:7123 status          # virtual pack (make sim prints the port)
    cellchain --serial /dev/ttyACM0 cells             # End board USB, after usb_app.run()
    cellchain --ble AA:BB:CC:DD:EE:FF settings get
    cellchain ... settings set vmax_mv 3650
    cellchain ... password 567890                     # new password; --password is the old
    cellchain ... mode critical | preset lifepo4 | calibrate | alarms | events | version | watch
    cellchain ... dashboard [--port 8124] [--history FILE]   # the pack in a browser

The password comes from ``--password`` or the CELLCHAIN_PASSWORD environment variable
(default 1234; ``version`` needs none). ``--json`` may stand before or after the command.
Exit status: 0 done, 1 refused by the board (wrong password included; the reason is printed),
2 board unreachable (no connection, no reply, a reply out of step). While the board still has
the factory password 1234, every command but ``password`` and ``version`` is refused (exit 1)
until a password of 6 to 16 digits is set.
"""
import argparse
import json
import os
import sys

from cellchain import client as _client
from cellchain.history import known_pack
from cellchain.pack_link import cell_flags, normalise_cell, parse_status


def break_text(position):
    """The link's failing position as a person checks it (the same words as the firmware's
    core.events.break_text): the first board whose input failed is ``position``, so board
    ``position - 1`` is dead or unpowered, or the wire after it is cut."""
    position = int(position)
    if position <= 0:
        return "intact"
    if position == 1:
        return "board 1 (Begin)"
    return "board %d or the wire after it (to board %d)" % (position - 1, position)


CHEMISTRY_NAMES = ("unknown", "lifepo4", "lto", "nmc", "nca")
MODE_NAMES = ("normal", "critical")
NO_LOGIN = ("version",)          # V@ and F? answer without a login


FACTORY_OK = ("password", "version")   # what may run while the factory password is set


class LoginRefused(Exception):
    """The board refused the password (exit 1, as a refused request)."""


def _factory_password(c, args):
    """True when the board still has the factory password (ST? pw_factory; firmware without
    the flag: the password used is 1234)."""
    try:
        flag = c.status().get("pw_factory")
    except _client.LinkError:
        raise
    except _client.ProtocolError:
        flag = None
    return args.password == "1234" if flag is None else flag == "1"


def _connect(args, login=True):
    t = _client.open_transport(args.socket, args.serial, args.ble, args.baud)
    c = _client.Client(t, timeout_s=args.timeout)
    if login and not c.login(args.password):
        why = "wrong password, or locked"
        try:
            lk = c.lock_status()
            wait_ms = max(lk["connection_ms"], lk["global_ms"])
            if wait_ms:
                why = "locked for %d s after wrong passwords" % ((wait_ms + 999) // 1000)
            else:
                why = "wrong password"
        except _client.ProtocolError:
            pass  # older firmware without LK?
        c.close()
        raise LoginRefused("login refused (%s)" % why)
    if login and args.cmd not in FACTORY_OK and _factory_password(c, args):
        c.close()
        raise LoginRefused("the End board still has the factory password 1234: set your own first "
                           "(6 to 16 digits): cellchain ... --password 1234 password NEW")
    return c


def _out(args, data, text):
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        print(text)


def cmd_scan(args):
    try:
        found = _client.scan(args.scan_timeout)
    except Exception as e:  # bleak without BlueZ/adapter raises FileNotFoundError, BleakError, ...
        print("cellchain: Bluetooth scan failed - no Bluetooth adapter found, or the Bluetooth "
              "service (BlueZ) is not running (%s). Without Bluetooth use --serial PORT or "
              "--socket HOST:PORT." % (e or type(e).__name__), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{"address": a, "name": n, "rssi": r} for a, n, r in found]))
    elif not found:
        print("no cellchain or 123\\SmartBMS board found")
    for a, n, r in found:
        if not args.json:
            print("%s  %-20s  %d dBm" % (a, n, r))
    return 0


def cmd_status(c, args):
    st = parse_status(c.status())
    al = c.alarms()
    st["alarm_names"] = al["names"]
    cells = st.get("cells") or 0
    pack, lo, hi = known_pack(st)       # unknown (not a partial sum) unless every cell is trusted
    st["pack_mv"], st["min_mv"], st["max_mv"] = pack, lo, hi     # JSON: null = unknown

    def volts(mv):
        return "unknown" if mv is None else "%.3f V" % (mv / 1000)
    text = "\n".join((
        "cells      %d   pack %s   min %s  max %s" % (cells, volts(pack), volts(lo), volts(hi)),
        "current    %+.2f A   in %d W  out %d W" % (st["current_ma"] / 1000, st["pin_w"], st["pout_w"]),
        "SoC        %.1f %%%s   stored %d Wh   SoH %s %%   cycles %s" % (
            st["soc_c"] / 100, "" if st["soc_cal"] == 1 else " (not calibrated)",
            st["stored_wh"], st["soh"], st["cycles"]),
        "relays     charge %s   load %s   link %s%s" % (
            "ON" if st["charge"] == 1 else "off", "ON" if st["load"] == 1 else "off",
            "ok" if st["comm"] == 1 else _link_lost_text(st, al["names"]),
            "" if st.get("link") is None else "   quality %s/64 good frames" % st["link"]),
        "alarms     %s%s" % (", ".join(al["names"]) or "none",
                             "   (board %s keeps restarting)" % st["rst"] if st.get("rst") else ""),
    ))
    _out(args, st, text)
    return 0


def _link_lost_text(st, names):
    """Why the link is down: never came up (no position known), a failing link held open, or
    a break at a position."""
    if "link_never_up" in names:
        return "NEVER UP (no complete frame since the End board started: wiring, baud or clocks)"
    if "link_quality" in names:
        return "HELD OPEN (the link keeps failing: relays stay open until it has been clean for a while)"
    return "LOST (%s)" % break_text(st["break"] or 0)


def _flag_text(status):
    return ", ".join(f.replace("_", " ") for f in cell_flags(status)) or "ok"


def cmd_cells(c, args):
    cells = [normalise_cell(x) for x in c.cells()]
    for x in cells:
        x["flags"] = cell_flags(x["status"])
    lines = ["cell   voltage    temp      status"]
    for x in cells:
        lines.append("%4d   %s   %s   %s" % (
            x["cell"], "  --    " if x["mv"] is None else "%.3f V" % (x["mv"] / 1000),
            "   --    " if x["temp_dc"] is None else "%5.1f °C" % (x["temp_dc"] / 10), _flag_text(x["status"])))
    _out(args, cells, "\n".join(lines))
    return 0


def setting_text(name, value):
    """A setting with its unit or meaning: '3650 mV', '20 (2.0 °C)', '1 (lifepo4)'."""
    if name == "chemistry" and isinstance(value, int) and 0 <= value < len(CHEMISTRY_NAMES):
        return "%d (%s)" % (value, CHEMISTRY_NAMES[value])
    if name == "mode" and isinstance(value, int) and 0 <= value < len(MODE_NAMES):
        return "%d (%s)" % (value, MODE_NAMES[value])
    if name.endswith("_dc") and isinstance(value, int):
        return "%d (%.1f °C)" % (value, value / 10)
    for suffix, unit in (("_mv", "mV"), ("_ah", "Ah"), ("_pct", "%"), ("_ms", "ms"), ("_cycles", "cycles")):
        if name.endswith(suffix):
            return "%s %s" % (value, unit)
    if name == "loop_count":
        return "%s turns" % value
    return str(value)


def _value(text):
    try:
        return int(text)
    except ValueError:
        return text


def cmd_settings(c, args):
    if args.action == "get":
        s = c.settings()
        if args.name:
            if args.name not in s:
                print("unknown setting %s" % args.name, file=sys.stderr)
                return 1
            _out(args, {args.name: s[args.name]}, setting_text(args.name, s[args.name]))
        else:
            _out(args, s, "\n".join("%-22s %s" % (k, setting_text(k, v)) for k, v in s.items()))
        return 0
    if args.action == "export":
        return _settings_export(c, args)
    if args.action == "import":
        return _settings_import(c, args)
    if args.name is None or args.value is None:
        print("usage: cellchain settings set NAME VALUE", file=sys.stderr)
        return 2
    if args.name == "chemistry":
        # a chemistry is a preset (every voltage and temperature limit moves with it): the board
        # refuses the bare field, so this asks as `preset` does and applies the preset (issue 20)
        v = _value(args.value)
        if isinstance(v, int):
            name = CHEMISTRY_NAMES[v] if 1 <= v < len(CHEMISTRY_NAMES) else None
        else:
            name = v.lower() if v.lower() in CHEMISTRY_NAMES[1:] else None
        if name is None:
            print("chemistry must be 1..4 or lifepo4, lto, nmc, nca", file=sys.stderr)
            return 2
        args.chemistry = name
        return cmd_preset(c, args)
    c.set_setting(args.name, args.value)
    # show what the board stored, never what was typed (they differ on a board that clamps)
    stored = c.settings().get(args.name)
    _out(args, {args.name: stored}, "%s = %s" % (args.name, setting_text(args.name, stored)))
    if str(stored) != str(_value(args.value)):
        print("board stored %s, not %s" % (stored, args.value), file=sys.stderr)
        return 1
    return 0


def _settings_export(c, args):
    from cellchain import settings_io
    if not args.name:
        print("usage: cellchain settings export FILE   (- = stdout)", file=sys.stderr)
        return 2
    text = settings_io.export_text(c.settings())
    if args.name == "-":
        sys.stdout.write(text)
    else:
        with open(args.name, "w") as f:
            f.write(text)
        print("settings written to %s" % args.name)
    return 0


def _settings_import(c, args):
    """Checked as a whole by the board's rules first (one bad field refuses the file, nothing
    written), then written in an order the board accepts."""
    from cellchain import settings_io
    from cellchain.pack_link import core_settings
    if not args.name:
        print("usage: cellchain settings import FILE   (- = stdin)", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.name == "-" else open(args.name).read()
        new = settings_io.parse(text)
    except (OSError, settings_io.ImportRefused) as e:
        print("cannot import %s: %s" % (args.name, e), file=sys.stderr)
        return 1

    def write(name, value):
        try:
            c.set_setting(name, value)
        except _client.ProtocolError as e:
            return str(e)
        return None
    try:
        def preset(chemistry):
            try:
                c.preset(chemistry)
            except _client.ProtocolError as e:
                return str(e)
            return None
        done = settings_io.import_settings(c.settings(), new, write, core_settings(), preset)
    except settings_io.ImportRefused as e:
        print("import %s: %s" % (args.name, e), file=sys.stderr)
        return 1
    _out(args, {"written": done}, "imported %s: %s" % (
        args.name, ", ".join(done) if done else "nothing to change (the board has these settings)"))
    return 0


def cmd_password(c, args):
    c.change_password(args.password, args.new)
    _out(args, {"ok": True}, "password changed")
    return 0


def cmd_mode(c, args):
    c.mode(args.mode)
    _out(args, {"mode": args.mode}, "mode %s" % args.mode)
    return 0


def cmd_preset(c, args):
    current = c.settings().get("chemistry", 0)
    want = CHEMISTRY_NAMES.index(args.chemistry)
    if current not in (0, want) and not args.yes:
        have = CHEMISTRY_NAMES[current] if 0 <= current < len(CHEMISTRY_NAMES) else str(current)
        question = ("the pack is set up as %s; the %s preset replaces V-min, V-balance, V-max and the "
                    "temperature limits (wrong limits over-charge or over-discharge the cells)" % (have, args.chemistry))
        if args.cmd == "settings":
            question = "chemistry is a preset: " + question
        if not sys.stdin.isatty():
            print("refused: %s. Run again with --yes to apply it." % question, file=sys.stderr)
            return 1
        answer = input("%s. Apply? [y/N] " % question)
        if answer.strip().lower() not in ("y", "yes"):
            print("not applied", file=sys.stderr)
            return 1
    c.preset(args.chemistry)
    _out(args, {"chemistry": args.chemistry}, "preset %s applied" % args.chemistry)
    return 0


def cmd_calibrate(c, args):
    c.calibrate()
    _out(args, {"ok": True}, "current sensors zeroed (no current must flow)")
    return 0


def cmd_alarms(c, args):
    a = c.alarms()
    st = parse_status(c.status())
    a["link_good_of_64"] = st.get("link")
    a["reset_position"] = st.get("rst")
    _out(args, a, "alarms %04X  %s  break position %d%s%s" % (
        a["mask"], ", ".join(a["names"]) or "none", a["break_position"],
        "" if st.get("link") is None else "  link %s/64 good frames" % st["link"],
        "  restarting board %s" % st["rst"] if st.get("rst") else ""))
    return 0


def _uptime(s):
    return "%dd %02d:%02d:%02d" % (s // 86400, s // 3600 % 24, s // 60 % 60, s % 60)


def cmd_events(c, args):
    ev = c.events()
    lines = ["   #  uptime         event    what                  cells             current    SoC"]
    for e in ev:
        if e["kind"] == "boot":       # the log is in flash: entries above are from an earlier run
            lines.append("%4d  %s  %-7s  %-20s  (the End board started)" % (
                e["n"], _uptime(e["uptime_s"]), e["kind"], e["what"]))
            continue
        lines.append("%4d  %s  %-7s  %-20s  %.3f..%.3f V  %+7.2f A  %5.1f %%%s" % (
            e["n"], _uptime(e["uptime_s"]), e["kind"], e["what"], e["min_mv"] / 1000, e["max_mv"] / 1000,
            e["current_ma"] / 1000, e["soc_c"] / 100,
            "  break: " + break_text(e["break_position"]) if e["break_position"] else ""))
    if not ev:
        lines.append("(no events stored on the End board)")
    _out(args, ev, "\n".join(lines))
    return 0


def cmd_version(c, args):
    fw = c.firmware()
    line = c.version()
    _out(args, {"firmware": fw, "v@": line}, "firmware %s   (V@ %s)" % (fw, line))
    return 0


def _round_extras(c, r):
    """Relays and alarms beside a streamed round (ST? and A?: the gen3 stream carries neither)."""
    try:
        st = parse_status(c.status())
        al = c.alarms()
    except _client.ProtocolError:
        return
    r["relays"] = {"charge": st.get("charge") == 1, "load": st.get("load") == 1}
    r["alarms"] = al["names"]
    r["link"] = {"ok": st.get("comm") == 1, "break_position": al["break_position"]}


def watch_text(r):
    """Two lines per round: the pack, then every cell (B = balancing, ! = a fault bit)."""
    u, e, v, t = r.get("U", {}), r.get("E", {}), r.get("V", {}), r.get("T", {})
    relays = r.get("relays")
    pack = "%s V  %s A  SoC %s %%  cells %s..%s V  %s..%s °C" % (
        _f(u.get("pack_v"), "%.2f"), _f(u.get("i_a"), "%+.2f"), e.get("soc_pct", "--"),
        _f(v.get("min_v"), "%.3f"), _f(v.get("max_v"), "%.3f"), _f(t.get("min_c"), "%d"), _f(t.get("max_c"), "%d"))
    if relays is not None:
        pack += "  | charge %s load %s | %s" % ("ON" if relays["charge"] else "off",
                                                 "ON" if relays["load"] else "off",
                                                 "alarms: " + (", ".join(r["alarms"]) or "none"))
    cells = []
    full = {}                   # cellchain's CS lines carry the full status (C: gen3 problem bits only)
    for cs in r.get("CS", ()):
        for k, st in enumerate(cs["status"]):
            full[cs["first"] + k] = st
    for x in r["C"]:
        flags = cell_flags(full.get(x["cell"], x["status"]))
        mark = ("B" if "balancing" in flags else "") + ("!" if set(flags) - {"balancing", "not_calibrated", "derated"} else "")
        cells.append("%s%s/%s°C" % ("--" if x["v"] is None else "%.3f" % x["v"], mark,
                                    "--" if x["t_c"] is None else "%d" % x["t_c"]))
    return pack + "\n  " + "  ".join(cells)


def cmd_watch(c, args):
    c.stream(True)
    try:
        for r in c.rounds(max_rounds=args.rounds):
            _round_extras(c, r)
            if args.json:
                print(json.dumps(r, sort_keys=True), flush=True)
            else:
                print(watch_text(r), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            c.stream(False)
        except _client.ProtocolError:
            pass
    return 0


def _f(value, fmt):
    return "--" if value is None else fmt % value


def build_parser():
    ap = argparse.ArgumentParser(prog="cellchain", description="cellchain End board app client")
    conn = ap.add_mutually_exclusive_group()
    conn.add_argument("--socket", metavar="HOST:PORT", help="virtual pack app socket")
    conn.add_argument("--serial", metavar="PORT", help="End board USB serial port (usb_app.run())")
    conn.add_argument("--ble", metavar="ADDRESS", help="End board Bluetooth address (see scan)")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--password", default=os.environ.get("CELLCHAIN_PASSWORD", "1234"))
    ap.add_argument("--timeout", type=float, default=5.0, help="reply timeout, s")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    common = argparse.ArgumentParser(add_help=False)      # --json also after the command
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    sub = ap.add_subparsers(dest="cmd", required=True)
    real_add = sub.add_parser

    def add_parser(name, **kw):
        return real_add(name, parents=[common], **kw)
    sub.add_parser = add_parser
    p = sub.add_parser("scan", help="find boards over Bluetooth")
    p.add_argument("--scan-timeout", type=float, default=5.0)
    sub.add_parser("status", help="pack summary")
    sub.add_parser("cells", help="every cell")
    p = sub.add_parser("settings", help="settings get [NAME] | set NAME VALUE | export FILE | import FILE")
    p.add_argument("action", choices=("get", "set", "export", "import"))
    p.add_argument("name", nargs="?", help="setting name (get, set) or file (export, import; - = stdout/stdin)")
    p.add_argument("value", nargs="?")
    p.add_argument("--yes", action="store_true", help="set chemistry: apply its preset without asking")
    p = sub.add_parser("password", help="change the password (--password is the old one)")
    p.add_argument("new")
    p = sub.add_parser("mode", help="normal or critical")
    p.add_argument("mode", choices=("normal", "critical"))
    p = sub.add_parser("preset", help="chemistry preset (asks first when the pack has another chemistry)")
    p.add_argument("chemistry", choices=("lifepo4", "lto", "nmc", "nca"))
    p.add_argument("--yes", action="store_true", help="apply without asking")
    sub.add_parser("calibrate", help="zero the current sensors (no current flowing!)")
    sub.add_parser("alarms", help="alarms and the link's failing position")
    sub.add_parser("version", help="firmware version")
    sub.add_parser("events", help="the End board's alarm and relay log (what, when, with values)")
    p = sub.add_parser("watch", help="live view of the streamed data")
    p.add_argument("--rounds", type=int, default=None, help="stop after N rounds")
    p = sub.add_parser("dashboard", help="the pack in a web browser, with history (docs/dashboard.md)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8124, help="HTTP port (default 8124)")
    p.add_argument("--history", default="cellchain-history.sqlite", help="SQLite history file")
    p.add_argument("--retention-days", type=float, default=30.0, help="keep this many days of history")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="a further name the page may be opened by (Host header; default 127.0.0.1, "
                        "localhost and the --host address)")
    p.add_argument("--replay", metavar="TRACE", default=None,
                   help="first fill the history from a virtual-pack trace (sim run --trace), in virtual time "
                        "ending now (a simulated week shows as the last 7 days)")
    p.add_argument("--replay-every", type=int, default=10, metavar="S",
                   help="replay one trace second in S (default 10)")
    p = sub.add_parser("mqtt", help="publish the pack to an MQTT broker with Home Assistant discovery (docs/gateway.md)")
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST[:PORT] of the broker (default 127.0.0.1:1883)")
    p.add_argument("--username", default=None)
    p.add_argument("--mqtt-password", default=os.environ.get("CELLCHAIN_MQTT_PASSWORD"))
    p.add_argument("--node-id", default="pack", help="this pack's id in topics and unique ids (default pack)")
    p.add_argument("--name", default="cellchain pack", help="the device name in Home Assistant")
    p.add_argument("--base-topic", default="cellchain")
    p.add_argument("--discovery-prefix", default="homeassistant")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    return ap


def cmd_mqtt(c, args):
    from cellchain import mqtt, pack_link
    link = pack_link.PackLink(c)
    link.password = args.password
    try:
        args.sw_version = c.firmware()
    except _client.ProtocolError:
        args.sw_version = None
    return mqtt.run(link, args)


def replay(args):
    """``dashboard --replay TRACE``: the trace into the history file; True when a board is given
    to serve the page for."""
    from cellchain import history
    store = history.HistoryStore(args.history, retention_days=None)
    try:
        n, t0, t1 = history.replay_trace(store, args.replay, every_s=max(1, args.replay_every))
    finally:
        store.close()
    if not n:
        print("no readings in %s" % args.replay, file=sys.stderr)
        return False
    print("history %s: %d readings from %s (%.1f days of virtual time)" % (
        args.history, n, args.replay, (t1 - t0) / 86400.0), flush=True)
    return True


COMMANDS = {"mqtt": cmd_mqtt, "status": cmd_status, "cells": cmd_cells, "settings": cmd_settings,
            "password": cmd_password, "mode": cmd_mode, "preset": cmd_preset,
            "calibrate": cmd_calibrate, "alarms": cmd_alarms, "version": cmd_version, "events": cmd_events,
            "watch": cmd_watch}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "scan":
            return cmd_scan(args)
        if args.cmd == "dashboard":
            from cellchain import dashboard
            if args.replay:
                if not replay(args):
                    return 1
                if not (args.socket or args.serial or args.ble):
                    print("to see it: .venv/bin/cellchain --socket 127.0.0.1:8123 dashboard --history %s"
                          "   (with make sim running)" % args.history)
                    return 0
            args.password_given = bool(os.environ.get("CELLCHAIN_PASSWORD")) or any(
                a == "--password" or a.startswith("--password=") for a in (argv or sys.argv[1:]))
            return dashboard.run(args)
        c = _connect(args, login=args.cmd not in NO_LOGIN)
    except LoginRefused as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    except _client.LinkError as e:
        print("cellchain: board unreachable: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:  # no adapter, no port: one line, not a traceback
        print("cellchain: %s" % e, file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.cmd](c, args)
    except _client.LinkError as e:
        print("cellchain: board unreachable: %s" % e, file=sys.stderr)
        return 2
    except _client.ProtocolError as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("cellchain: %s" % e, file=sys.stderr)
        return 2
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())

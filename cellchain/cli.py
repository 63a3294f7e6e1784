"""``cellchain`` / ``python -m cellchain``: talk to an End board (or the virtual pack) over the
app protocol (docs/ble-protocol.md).

    cellchain scan
    cellchain --socket 127.0.0.1:7123 status          # virtual pack (make sim prints the port)
    cellchain --serial /dev/ttyACM0 cells             # End board USB, after usb_app.run()
    cellchain --ble AA:BB:CC:DD:EE:FF settings get
    cellchain ... settings set vmax_mv 3650
    cellchain ... password 567890                     # new password; --password is the old
    cellchain ... mode critical | preset lifepo4 | calibrate | alarms | version | watch
    cellchain ... dashboard [--port 8124] [--history FILE]   # the pack in a browser

The password comes from ``--password`` or the CELLCHAIN_PASSWORD environment variable
(default 1234). Exit status: 0 done, 1 refused by the board (the reason is printed),
2 no connection / no reply.
"""
import argparse
import json
import os
import sys

from cellchain import client as _client


def _connect(args):
    t = _client.open_transport(args.socket, args.serial, args.ble, args.baud)
    c = _client.Client(t, timeout_s=args.timeout)
    if not c.login(args.password):
        c.close()
        raise _client.ProtocolError("login refused (wrong password, or locked after 5 failures)")
    return c


def _out(args, data, text):
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        print(text)


def cmd_scan(args):
    found = _client.scan(args.scan_timeout)
    if args.json:
        print(json.dumps([{"address": a, "name": n, "rssi": r} for a, n, r in found]))
    elif not found:
        print("no cellchain or 123\\SmartBMS board found")
    for a, n, r in found:
        if not args.json:
            print("%s  %-20s  %d dBm" % (a, n, r))
    return 0


def cmd_status(c, args):
    st = c.status()
    al = c.alarms()
    st["alarm_names"] = al["names"]
    cells = int(st.get("cells", 0))
    text = "\n".join((
        "cells      %d   pack %.3f V   min %.3f V  max %.3f V" % (
            cells, int(st["pack_mv"]) / 1000, int(st["min_mv"]) / 1000, int(st["max_mv"]) / 1000),
        "current    %+.2f A   in %d W  out %d W" % (
            int(st["current_ma"]) / 1000, int(st["pin_w"]), int(st["pout_w"])),
        "SoC        %.1f %%%s   stored %d Wh   SoH %s %%   cycles %s" % (
            int(st["soc_c"]) / 100, "" if st["soc_cal"] == "1" else " (not calibrated)",
            int(st["stored_wh"]), st["soh"], st["cycles"]),
        "relays     charge %s   load %s   link %s" % (
            "ON" if st["charge"] == "1" else "off", "ON" if st["load"] == "1" else "off",
            "ok" if st["comm"] == "1" else "LOST (break at %s)" % st["break"]),
        "alarms     %s" % (", ".join(al["names"]) or "none"),
    ))
    _out(args, st, text)
    return 0


def cmd_cells(c, args):
    cells = c.cells()
    lines = ["cell   voltage   temp     status"]
    for x in cells:
        lines.append("%4d   %s   %s   %02X" % (
            x["cell"], "  --   " if x["mv"] is None else "%.3f V" % (x["mv"] / 1000),
            "  --   " if x["temp_dc"] is None else "%5.1f C" % (x["temp_dc"] / 10), x["status"]))
    _out(args, cells, "\n".join(lines))
    return 0


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
            _out(args, {args.name: s[args.name]}, str(s[args.name]))
        else:
            _out(args, s, "\n".join("%-22s %s" % (k, v) for k, v in s.items()))
        return 0
    if args.name is None or args.value is None:
        print("usage: cellchain settings set NAME VALUE", file=sys.stderr)
        return 2
    c.set_setting(args.name, args.value)
    _out(args, {args.name: _value(args.value)}, "%s = %s" % (args.name, args.value))
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
    c.preset(args.chemistry)
    _out(args, {"chemistry": args.chemistry}, "preset %s applied" % args.chemistry)
    return 0


def cmd_calibrate(c, args):
    c.calibrate()
    _out(args, {"ok": True}, "current sensors zeroed (no current must flow)")
    return 0


def cmd_alarms(c, args):
    a = c.alarms()
    _out(args, a, "alarms %04X  %s  break position %d" % (
        a["mask"], ", ".join(a["names"]) or "none", a["break_position"]))
    return 0


def cmd_version(c, args):
    fw = c.firmware()
    line = c.version()
    _out(args, {"firmware": fw, "v@": line}, "firmware %s   (V@ %s)" % (fw, line))
    return 0


def cmd_watch(c, args):
    c.stream(True)
    try:
        for r in c.rounds(max_rounds=args.rounds):
            if args.json:
                print(json.dumps(r, sort_keys=True), flush=True)
                continue
            u, e, v = r.get("U", {}), r.get("E", {}), r.get("V", {})
            volts = " ".join("--" if x["v"] is None else "%.3f" % x["v"] for x in r["C"])
            print("%s V  %s A  SoC %s %%  min %s max %s | %s" % (
                _f(u.get("pack_v"), "%.2f"), _f(u.get("i_a"), "%+.2f"), e.get("soc_pct", "--"),
                _f(v.get("min_v"), "%.3f"), _f(v.get("max_v"), "%.3f"), volts), flush=True)
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
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scan", help="find boards over Bluetooth")
    p.add_argument("--scan-timeout", type=float, default=5.0)
    sub.add_parser("status", help="pack summary")
    sub.add_parser("cells", help="every cell")
    p = sub.add_parser("settings", help="settings get [NAME] | set NAME VALUE")
    p.add_argument("action", choices=("get", "set"))
    p.add_argument("name", nargs="?")
    p.add_argument("value", nargs="?")
    p = sub.add_parser("password", help="change the password (--password is the old one)")
    p.add_argument("new")
    p = sub.add_parser("mode", help="normal or critical")
    p.add_argument("mode", choices=("normal", "critical"))
    p = sub.add_parser("preset", help="chemistry preset")
    p.add_argument("chemistry", choices=("lifepo4", "lto", "nmc", "nca"))
    sub.add_parser("calibrate", help="zero the current sensors (no current flowing!)")
    sub.add_parser("alarms", help="alarms and the link's failing position")
    sub.add_parser("version", help="firmware version")
    p = sub.add_parser("watch", help="live view of the streamed data")
    p.add_argument("--rounds", type=int, default=None, help="stop after N rounds")
    p = sub.add_parser("dashboard", help="the pack in a web browser, with history (docs/dashboard.md)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8124, help="HTTP port (default 8124)")
    p.add_argument("--history", default="cellchain-history.sqlite", help="SQLite history file")
    p.add_argument("--retention-days", type=float, default=30.0, help="keep this many days of history")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    return ap


COMMANDS = {"status": cmd_status, "cells": cmd_cells, "settings": cmd_settings,
            "password": cmd_password, "mode": cmd_mode, "preset": cmd_preset,
            "calibrate": cmd_calibrate, "alarms": cmd_alarms, "version": cmd_version,
            "watch": cmd_watch}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "scan":
            return cmd_scan(args)
        if args.cmd == "dashboard":
            from cellchain import dashboard
            args.password_given = bool(os.environ.get("CELLCHAIN_PASSWORD")) or any(
                a == "--password" or a.startswith("--password=") for a in (argv or sys.argv[1:]))
            return dashboard.run(args)
        c = _connect(args)
    except Exception as e:  # no adapter, no port, refused login: one line, not a traceback
        print("cellchain: %s" % e, file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.cmd](c, args)
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

"""Virtual inverter/charger on the gateway's CAN bus (host side): obeys CVL/CCL/DCL as a
Victron system (MPPT + Multi, DVCC) or a Deye hybrid (Pylontech protocol) does.

Both read 0x351 (CVL 0.1 V, CCL / DCL 0.1 A). They stop charging and discharging when:
  victron  0x351 missing for more than 3 s; an alarm pair active in 0x35A (bytes 0-3);
           DCL = 0 shuts the Multi down (island mode). With ``feed_in`` (the default: an MPPT
           feeding in) the MPPTs ignore CCL and obey only CVL - so lowering CVL is the only way
           the BMS can stop them, which is what the closed loop does.
  deye     0x351 missing for more than 5 s (F58); 0x359 protection or system-error bits; charge
           only with CCL > 0 and the charge-enable bit of 0x35C, discharge only with DCL > 0 and
           its enable bit; CVL below 1 V latches error W31 (the 0.1 V / 0.1 A case).
Both hold the pack at CVL (constant voltage) limited by the obeyed current.

``Inverter.receive(fid, data, t_s)`` takes one frame; ``tick(t_s)`` updates ``running`` and
records the first time it stopped after running (``stop_t``). The simulation asks
``charge()`` -> (cv_v, max_a) and ``discharge_max_a()``.
"""
import struct

KINDS = ("victron", "deye")


class Inverter:
    def __init__(self, kind="victron", feed_in=True):
        if kind not in KINDS:
            raise ValueError("inverter kind must be victron or deye")
        self.kind = kind
        self.feed_in = bool(feed_in)
        self.timeout_s = 3.0 if kind == "victron" else 5.0
        self.cvl_v = None
        self.ccl_a = 0.0
        self.dcl_a = 0.0
        self.last_351 = None
        self.alarm = False
        self.charge_enable = kind == "victron"
        self.discharge_enable = kind == "victron"
        self.error = None
        self.running = False
        self.stop_t = None          # the last time it went from running to stopped
        self.start_t = None
        self.frames = 0
        self.why = "no BMS yet"

    def receive(self, fid, data, t_s):
        self.frames += 1
        if fid == 0x351:
            cvl, ccl, dcl = struct.unpack_from("<Hhh", data, 0)
            self.cvl_v = cvl / 10.0
            self.ccl_a = ccl / 10.0
            self.dcl_a = dcl / 10.0
            self.last_351 = t_s
            if self.kind == "deye" and self.cvl_v < 1.0:
                self.error = "W31"
        elif fid == 0x35A and self.kind == "victron":
            self.alarm = any(((data[i] >> s) & 3) == 1 for i in range(4) for s in (0, 2, 4, 6))
        elif fid == 0x359 and self.kind == "deye":
            self.alarm = bool(data[0] or data[1] & 0x08)
        elif fid == 0x35A and self.kind == "deye":      # Pylon v1.3
            self.alarm = any(((data[i] >> s) & 3) == 1 for i in range(4) for s in (0, 2, 4, 6))
            self.charge_enable = self.discharge_enable = True
        elif fid == 0x35C:
            self.charge_enable = bool(data[0] & 0x80)
            self.discharge_enable = bool(data[0] & 0x40)

    def tick(self, t_s):
        why = None
        if self.last_351 is None:
            why = "no BMS yet"
        elif t_s - self.last_351 > self.timeout_s:
            why = "BMS timeout (no 0x351 for %.0f s)" % self.timeout_s
        elif self.alarm:
            why = "BMS alarm"
        elif self.error:
            why = "error " + self.error
        running = why is None
        if self.running and not running:
            self.stop_t = t_s
        elif running and not self.running:
            self.start_t = t_s
        self.running = running
        self.why = why or "running"

    def charge(self):
        """(cv_v, max_a or None = no current limit of its own) while charging is possible, else (None, 0)."""
        if not self.running or self.cvl_v is None:
            return None, 0.0
        if self.kind == "victron":
            return self.cvl_v, (None if self.feed_in else max(0.0, self.ccl_a))
        if not self.charge_enable or self.ccl_a <= 0:
            return None, 0.0
        return self.cvl_v, self.ccl_a

    def discharge_max_a(self):
        if not self.running:
            return 0.0
        if self.kind == "deye" and not self.discharge_enable:
            return 0.0
        return max(0.0, self.dcl_a)


def kind_for_profile(profile):
    """The inverter that speaks a gateway profile in the virtual pack."""
    return "victron" if profile in ("victron", "sma") else "deye"

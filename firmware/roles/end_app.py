"""End board services around the pack brain: settings file, app protocol (BLE and USB), extended
data output, state persistence (the brain says when, ``save_brain_state`` writes it, at the
role's edge) and the 5 s password-reset button.

``EndServices`` is both the controller the app protocol talks to (``ctl``: snap, brain,
settings, apply_setting, set_password_hash, select_preset, set_mode, zero_current,
firmware_version) and the End role's ``outputs`` (``update(snap, brain, dt_ms)`` once a cycle).
Radio, USB and app faults stay here: every call into the transports is guarded, so a BLE stack
error is logged and counted but never reaches the relays, which the brain alone decides.

The app protocol (core.app_protocol, core.password: a fifth of the End's heap) is imported and
built at its first use - a client connecting, USB, the 5 s button - not at boot (issue 12, End
heap). That first use may fail for lack of memory: it runs on a transport path only (guarded,
counted in ``transport_errors``), never on the relay path.
"""
from micropython import const

from core import settings as cs
from core import store
from core.events import EventLog
from core.extout import ExtOutSender
from core.ratelimit import WriteBudget
from core.version import FIRMWARE_VERSION

_TRANSPORT_ERRORS_MAX = const(0x3FFFFFFF)
_IDLE_MS_MAX = const(0x3FFFFFFF)
# Settings writes to flash (settings, preset, mode, password): 20 at once, then one per minute.
# A write that changes nothing is answered OK without touching flash and costs nothing.
SETTINGS_WRITE_BURST = const(20)
SETTINGS_WRITE_REFILL_MS = const(60000)
# The event log goes to flash at most every 10 s (a flapping alarm cannot wear the flash out:
# at most 8640 small writes a day, spread by littlefs), the first change after a quiet spell at once.
EVENTS_SAVE_MS = const(10000)


class EndServices:
    """Settings, app protocol, extended output and persistence for one End board."""

    def __init__(self, hw, settings, settings_status, brain, snap, settings_path, lockout_path=None):
        self.hw = hw
        self.settings = settings
        self.settings_status = settings_status
        self.brain = brain
        self.snap = snap
        self.settings_path = settings_path
        self.firmware_version = FIRMWARE_VERSION
        self.events = EventLog()    # alarm/relay changes with values, read by EV? (in flash)
        self.events_path = None     # set by make_services: <data>/events.json
        self._events_wait_ms = 0
        self.events_saves = 0
        self.lockout_path = lockout_path
        self._app = None            # core.app_protocol.AppProtocol, built by ``app`` when needed
        self._app_idle_ms = 0       # time passed before it was built (its lockout counts it)
        self.transport_app = AppOnDemand(self)   # what BLE serves: builds the app at a connection
        self.write_budget = WriteBudget(SETTINGS_WRITE_BURST, SETTINGS_WRITE_REFILL_MS)
        self.ble = getattr(hw, "ble", None)
        tx = getattr(hw, "extout_tx", None)
        self.extout = ExtOutSender(tx) if tx is not None else None
        # readers take the first packet they see as the pack's state: send nothing until the
        # chain has delivered one complete frame (afterwards a lost link is sent as its flag)
        self.extout_started = False
        self.transport_errors = 0
        self.last_transport_error = ""
        self.saves = 0
        self.save_errors = 0
        self.role = None            # set by the End role (for comm timeout changes)
        if self.ble is not None:
            self._guard(self._start_ble)

    # ---- transports (never allowed to raise into the role) ----------------------------------
    def _start_ble(self):
        s = self.settings
        ble = self.ble
        if ble is not None:
            ble.start(self.transport_app, s.name, s.name == "123\\SmartBMS")

    @property
    def app(self):
        """The app protocol (core.app_protocol.AppProtocol), imported and built at the first
        call. Allocates then (a MemoryError reaches the caller: transports and the button only)."""
        app = self._app
        if app is None:
            from core.app_protocol import AppProtocol
            app = AppProtocol(self, lockout_path=self.lockout_path)
            app.tick(self._app_idle_ms)   # a lock loaded from flash has been running since boot
            self._app = app
        return app

    def _guard(self, fn):
        try:
            fn()
        except Exception as e:  # a radio fault must not stop the pack brain
            if self.transport_errors < _TRANSPORT_ERRORS_MAX:
                self.transport_errors += 1
            self.last_transport_error = repr(e)
            print("end_app: transport error", repr(e))

    def poll(self):
        """Every wake-up of the board loop: the extended-output queue into its FIFO, radio
        bytes in and out. No allocation (``ble.poll()`` is called, not passed as a bound method)."""
        x = self.extout
        if x is not None and x.queued:
            x.pump()
        ble = self.ble
        if ble is not None:
            try:
                ble.poll()
            except Exception as e:  # a radio fault must not stop the pack brain
                if self.transport_errors < _TRANSPORT_ERRORS_MAX:
                    self.transport_errors += 1
                self.last_transport_error = repr(e)
                print("end_app: transport error", repr(e))

    # ---- once per cycle ---------------------------------------------------------------------
    def update(self, snap, brain, dt_ms):
        if brain is not None:
            self.events.update(snap, brain)
        app = self._app
        if app is not None:
            app.tick(dt_ms)
        elif self._app_idle_ms < _IDLE_MS_MAX and dt_ms > 0:
            self._app_idle_ms += dt_ms
        self.write_budget.tick(dt_ms)
        if app is not None:
            app.stream_round()
        if brain is not None and brain.should_save:
            if save_brain_state(brain):
                self.saves += 1
            else:
                self.save_errors += 1
        w = self._events_wait_ms - dt_ms if dt_ms > 0 else self._events_wait_ms
        self._events_wait_ms = w if w > 0 else 0
        if self.events.dirty and self._events_wait_ms == 0 and self.events_path is not None:
            self._events_wait_ms = EVENTS_SAVE_MS
            if save_events(self.events, self.events_path):
                self.events_saves += 1
            else:
                self.save_errors += 1
        # last: after the flash writes (interrupts off), so the FIFO never runs dry in a packet
        if self.extout is not None:
            if snap.comm_ok:
                self.extout_started = True
            if self.extout_started:
                self.extout.cycle(dt_ms, snap, brain, self.settings)

    def button_press(self, long_press=True):
        """Manual: hold the End board button 5 s -> password back to 1234, every session
        dropped, Bluetooth reconfigured. A short press (issue 21) opens the owner window
        (core.password): for 2 min the next 3 logins pass the global lockout that strangers'
        guesses may hold - the owner's way in that nobody on the radio can block.
        (One method for both: every method of this class costs End heap at boot.)"""
        try:
            try:
                app = self.app
            except MemoryError:
                if long_press:
                    # no room for the protocol: the factory password still comes back
                    self.set_password_hash(self.settings.pw_salt, "")
                raise
            if long_press:
                app.reset_password()
            else:
                app.owner_window()
        except Exception as e:  # as _guard: a fault here must not stop the pack brain
            if self.transport_errors < _TRANSPORT_ERRORS_MAX:
                self.transport_errors += 1
            self.last_transport_error = repr(e)
            print("end_app: transport error", repr(e))
        if long_press and self.ble is not None:
            self._guard(self.ble.disconnect_all)
            self._guard(self._start_ble)

    # ---- controller for core.app_protocol ------------------------------------------------------
    def _write_allowed(self):
        """None, or the refusal when the settings-write budget is spent (flash wear)."""
        b = self.write_budget
        if b.take():
            return None
        return "settings write limit (%d, then 1 per %d s): try again in %d s" % (
            b.burst, b.refill_ms // 1000, (b.wait_ms() + 999) // 1000)

    def _commit(self, trial):
        """Validate and save ``trial``, then make it the settings in force. None or a message.
        An unchanged set is not written again (coalesced)."""
        msg = cs.check(trial)
        if msg is not None:
            return msg
        if trial == self.settings and self.settings_status == cs.LOADED:
            return None
        msg = self._write_allowed()
        if msg is not None:
            return msg
        try:
            cs.save(self.settings_path, trial)
        except (OSError, cs.SettingsError) as e:
            return "settings not saved: %s" % e
        self.settings.set_from(trial)
        self.settings_status = cs.LOADED
        self.brain.set_settings(self.settings, True)
        if self.role is not None:
            self.role.comm_timeout_cycles = self.settings.comm_timeout_cycles
            self.role.cycle_ms = self.settings.cycle_ms
        return None

    def apply_setting(self, name, value):
        trial = self.settings.copy()
        msg = cs.apply(trial, name, value)
        if msg is not None:
            return msg
        return self._commit(trial)

    def set_password_hash(self, salt, pw_hash):
        trial = self.settings.copy()
        trial.pw_salt = salt
        trial.pw_hash = pw_hash
        if pw_hash:  # the 5 s button's reset to the factory password is never refused
            msg = self._write_allowed()
            if msg is not None:
                return msg
        try:
            cs.save(self.settings_path, trial)
        except (OSError, cs.SettingsError) as e:
            return "password not saved: %s" % e
        self.settings.pw_salt = salt
        self.settings.pw_hash = pw_hash
        return None

    def select_preset(self, chemistry):
        trial = self.settings.copy()
        msg = cs.apply_preset(trial, chemistry)
        if msg is not None:
            return msg
        return self._commit(trial)

    def set_mode(self, mode):
        return self.apply_setting("mode", mode)

    def zero_current(self):
        if self.brain.zero_current():
            return None
        return "zero calibration refused: a sensor gives no data or current is flowing"


class AppOnDemand:
    """The transports' view of ``services.app`` (open, close, feed, pull_lines): the protocol is
    built when the first client opens a session (a BLE connection), not when the radio starts."""

    def __init__(self, services):
        self._services = services

    def open(self, write, pull=False):
        return self._services.app.open(write, pull)

    def close(self, slot):
        app = self._services._app
        if app is not None:
            app.close(slot)

    def feed(self, data, n=-1, slot=0):
        self._services.app.feed(data, n, slot)

    def pull_lines(self, slot, room):
        return self._services.app.pull_lines(slot, room)


def save_brain_state(brain):
    """Store the pack brain's state (SoC, energies, cycles, trims) where it asked, now: the End
    role calls this from its cycle, which runs right after a frame has passed, so the flash
    write (interrupts off for the erase on RP2040) falls outside the frame window. Returns True
    when written. Allocates (not per cycle: only when the brain raises should_save)."""
    from core.brain import STATE_KIND, STATE_VERSION
    path = brain.state_path
    ok = False
    if path is not None:
        try:
            store.save(path, STATE_KIND, STATE_VERSION, brain.state_values())
            ok = True
        except (OSError, ValueError):
            ok = False
    brain.state_saved(ok)
    return ok


def save_events(log, path):
    """The event log to flash (core.store, atomic), in the post-frame window like the brain's
    state. Returns True when written; the log stays dirty (retried later) when not."""
    from core import events
    try:
        store.save(path, events.KIND, events.VERSION, log.values())
    except (OSError, ValueError, MemoryError):
        return False
    log.dirty = False
    return True


def load_events(log, path):
    """At boot: the saved event log (a missing or damaged file starts an empty one), then a
    BOOT entry. Never raises."""
    from core import events
    values, status = store.load(path, events.KIND, events.VERSION)
    return log.restore(values if status == store.OK and values is not None else {})


def make_services(hw, snap, data_dir):
    """Load the settings file (fail-safe on anything but a good file), build the pack brain and
    the services around it. Returns (settings, brain, services)."""
    from core.brain import PackBrain
    settings_path = data_dir + "/settings.json"
    s, status = cs.load(settings_path)
    if status != cs.LOADED:
        print("end: settings", cs.LOAD_NAMES[status], "(%s)" % cs.load_reason(settings_path),
              "- relays stay off until settings are written")
    brain = PackBrain(s, status == cs.LOADED, data_dir + "/soc.json")
    services = EndServices(hw, s, status, brain, snap, settings_path, data_dir + "/lockout.json")
    services.events_path = data_dir + "/events.json"
    load_events(services.events, services.events_path)
    return s, brain, services

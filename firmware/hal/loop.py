"""The board's real-time loop: poll, cycle, watchdog, supervisor, sleep. ``main.py`` calls

    from hal import loop; loop.run(board, roles.between)

``run`` builds ``hw`` with ``hal.board.make_hw(board_def, role_name)`` (role name = last part of
``role_module.__name__``), the role with ``role_module.make(hw, board_def)``, registers both for
``diag`` (``loop.current_role`` ...) and drives them with a ``Loop``. ``Loop.step(now)`` is one
wake-up and returns how long the loop wants to wait (and in ``light_ms`` how much of it it may
light-sleep); ``Loop.once`` is a step and its sleep on the board (``run`` repeats it). The
virtual pack (both engines) and the bench drive the same ``step`` in virtual time:

* every wake-up: ``role.poll()`` (byte paths) and ``role.tick(dt_ms)`` (LED/button timing), if
  the role has them (an LED change made outside tick - the cycle's flash or steady light -
  makes the cell board's ``wake_in_ms`` 0: the next wake-up comes at once and shows it);
* the cycle: a frame-clocked role (one with ``cycle_due()``: Between, End) runs
  ``role.cycle(dt_ms)`` at the first wake-up at which ``cycle_due()`` is True (a frame has
  passed it, or its fallback timer expired - roles.FrameClock); any other role (Begin, the
  chain's clock) every ``role.cycle_ms`` (default 1000). dt_ms from ``time.ticks_diff`` (raw
  ticks never reach core); a late timed cycle is counted in ``stats.overruns`` and the
  schedule restarts from now instead of bursting to catch up;
* the watchdog (``hw.feed_watchdog()``: machine.WDT with board_def.WDT_TIMEOUT_MS, started by the
  first feed) is fed only after a cycle returned normally. A hung or endlessly failing loop
  therefore resets the board; boot.py and the role's construction start every output safe
  again;
* between wake-ups the board sleeps in ``time.sleep_ms`` (the port idles the CPU inside it and
  still runs the receiver's scheduled handler, so forwarding goes on) until the next timed
  cycle or ``role.wake_in_ms()``, at most MAX_SLEEP_MS. A role with ``wake_in_ms`` says itself
  when its byte path needs it (roles.frame_wake_ms: every FRAME_POLL_MS while a frame is due or
  passing, 1 ms for a polled receiver, else the next measurement, fallback timer or LED edge);
  a role with ``poll`` but no ``wake_in_ms`` is woken every LOOP_POLL_MS (board definition,
  default DEFAULT_POLL_MS);
* light sleep: with a ``sleeper`` (hal.sleep.make: the board definition's LIGHT_SLEEP, no radio
  on) and a role with ``sleep_budget_ms(wake_ms)`` (how long it may sleep deaf: between frames,
  roles.FrameClock.sleep_budget_ms; Begin between its frames), a budget of at least
  SLEEP_MIN_MS (bounded by the next timed cycle less the wake-up, and by a quarter of the
  watchdog timeout) is slept in ``sleeper.sleep(ms)`` (machine.lightsleep) instead of
  time.sleep_ms. The sleeper may decline (a character still going out, the balance output at a
  partial PWM duty): then time.sleep_ms as before, at most its ``retry_ms``. An exception
  from it is counted (``stats.sleep_errors``), never touches an output, and the loop idles in
  time.sleep_ms; after SLEEP_ERRORS_MAX of them it stops trying;
* awake time is measured with ``ticks_us`` and reported per cycle as ``stats.awake_permille`` (and
  a smoothed ``stats.awake_avg_permille``) for ``diag`` and the benchmark.

Supervisor: an exception from the role first calls ``role.safe()`` (then ``hw.safe()``), then
prints the traceback, writes it to ``<data_dir>/lasterror.txt`` and resets the board after
RESET_DELAY_MS, leaving a marker first (``hal.board.mark_intended_reset``) so the next start
reports reset cause "supervisor", not the watchdog reset rp2 makes of every machine.reset();
a start-up error goes to the same ``hal.board.DATA_DIR`` file diag reads. Ctrl-C at the REPL stops the loop with the outputs safe and keeps an already
running watchdog fed from a timer, so ``import diag`` works; ``machine.reset()`` restarts.
"""
import sys

from micropython import const

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any  # under TYPE_CHECKING: never imported on a board

from hal.board import DATA_DIR, LASTERROR_FILE, mark_intended_reset

MAX_SLEEP_MS = const(1000)
DEFAULT_POLL_MS = const(5)           # byte-path poll interval for roles with poll() (link FIFOs)
RESET_DELAY_MS = const(3000)
START_FAIL_DELAY_MS = const(10000)   # long enough to press Ctrl-C before a start-up reset loop
_DEFAULT_CYCLE_MS = const(1000)
SLEEP_MIN_MS = const(10)             # shorter budgets: not worth a wake-up (sleep_ms instead)
SLEEP_ERRORS_MAX = const(8)          # light-sleep exceptions before the loop stops trying

# Registry read by diag.py (filled by run()).
current_role: "Any" = None
current_hw: "Any" = None
current_board: "Any" = None
current_loop: "Any" = None
role_name = ""
_repl_timer: "Any" = None   # keep_fed's Timer after Ctrl-C: referenced, or rp2's finaliser stops it


class LoopStats:
    """Counters of the running loop (ints; awake fractions in permille)."""

    def __init__(self):
        self.cycles = 0
        self.overruns = 0
        self.feeds = 0
        self.last_cycle_us = 0      # duration of role.cycle()
        self.max_cycle_us = 0
        self.awake_permille = 1000  # awake share of the last complete cycle
        self.awake_avg_permille = 1000
        self.sleeps = 0             # wake-ups (each sleep ends in one)
        self.light_sleeps = 0       # of them out of a light sleep
        self.light_ms = 0           # light-sleep time in the last complete cycle
        self.sleep_errors = 0       # light-sleep calls that raised (time.sleep_ms instead)


def role_name_of(role_module):
    return role_module.__name__.split(".")[-1]


class Loop:
    """One role on one board, driven by real (or injected) ``machine`` and ``time`` modules."""

    def __init__(self, role, board_def, hw, machine, time, sleeper=None):
        self.role = role
        self.hw = hw
        self.machine = machine
        self.time = time
        self.stats = LoopStats()
        self.cycle_ms = getattr(role, "cycle_ms", _DEFAULT_CYCLE_MS)
        self._poll = getattr(role, "poll", None)
        self._tick = getattr(role, "tick", None)
        self._due = getattr(role, "cycle_due", None)     # frame-clocked roles (Between, End)
        self._wake_in = getattr(role, "wake_in_ms", None)
        if self._wake_in is None:
            self._wake_in = getattr(getattr(role, "cell", None), "wake_in_ms", None)
        if self._poll is not None and getattr(role, "wake_in_ms", None) is None:
            self.poll_ms = getattr(board_def, "LOOP_POLL_MS", DEFAULT_POLL_MS)
        else:
            self.poll_ms = MAX_SLEEP_MS     # the role's wake_in_ms() covers its byte path
        self._feed = getattr(hw, "feed_watchdog", None)
        self._wdt = None
        self._wdt_timeout_ms = getattr(board_def, "WDT_TIMEOUT_MS", 5000)
        self.sleeper = sleeper
        if sleeper is not None and hasattr(sleeper, "watch"):
            sleeper.watch(getattr(role, "tx_busy", None))   # bytes the role still queues
        self._budget = getattr(role, "sleep_budget_ms", None) if sleeper is not None else None
        self._wake_ms = getattr(sleeper, "wake_ms", 0)
        m = self._wdt_timeout_ms // 4        # the watchdog keeps counting in light sleep
        self._light_max = m if m < MAX_SLEEP_MS else MAX_SLEEP_MS
        self._light_acc = 0
        now = time.ticks_ms()
        self._last_tick = now
        self._last_cycle = now
        self._next_cycle = now
        us = time.ticks_us()
        self._wake_us = us
        self._cycle_start_us = us
        self._awake_us = 0
        self.light_ms = -1            # light-sleep budget of the wait step() returned; -1: no
        #                               wait (awake time goes on into the next step)

    def feed(self):
        if self._feed is not None:
            self._feed()
        else:
            if self._wdt is None:
                self._wdt = self.machine.WDT(timeout=self._wdt_timeout_ms)
            self._wdt.feed()
        self.stats.feeds += 1

    def step(self, now):
        """One wake-up at ``now`` (``ticks_ms``): poll/tick, the cycle when due. Sleeps nothing:
        returns how long the loop wants to wait before the next wake-up (ms, 0: at once) and
        leaves in ``light_ms`` how much of that it may light-sleep (0: none; -1: no wait).
        ``once`` / ``run`` (the board) sleep it; the virtual pack advances its virtual time
        by it. Exceptions propagate."""
        time = self.time
        ticks_diff = time.ticks_diff
        if self.light_ms >= 0:        # after a wait: awake again from now
            self._wake_us = time.ticks_us()
        dt_tick = ticks_diff(now, self._last_tick)
        self._last_tick = now
        if self._poll is not None:
            self._poll()
        if self._tick is not None:
            self._tick(dt_tick)
        due = self._due
        if due is not None:
            if due():
                self._cycle(now, 0)
        else:
            late = ticks_diff(now, self._next_cycle)
            if late >= 0:
                self._cycle(now, late)
        # the wait until the next wake-up and its light-sleep budget (light_ms)
        self.light_ms = -1
        if self._due is not None:
            wait = MAX_SLEEP_MS       # the role's wake_in_ms() includes its fallback timer
        else:
            wait = ticks_diff(self._next_cycle, time.ticks_ms())
        if self.poll_ms < wait:
            wait = self.poll_ms
        if self._wake_in is not None:
            w = self._wake_in()
            if w < wait:
                wait = w
        if wait > MAX_SLEEP_MS:
            wait = MAX_SLEEP_MS
        if wait <= 0:
            return 0
        light = 0
        if self._budget is not None:
            light = self._budget(self._wake_ms)
            if self._due is None:       # a timed cycle: awake again before it is due
                w = ticks_diff(self._next_cycle, time.ticks_ms()) - self._wake_ms
                if w < light:
                    light = w
            if light > self._light_max:
                light = self._light_max
        self.light_ms = light if light >= SLEEP_MIN_MS else 0
        self._awake_us += ticks_diff(time.ticks_us(), self._wake_us)
        self.stats.sleeps += 1
        return wait

    def once(self):
        """One wake-up now, then what it asked for (what ``run`` repeats on a board): its
        ``light_ms`` through the sleeper (light sleep), else - declined, an error, no budget -
        ``time.sleep_ms`` (at most the sleeper's retry time)."""
        wait = self.step(self.time.ticks_ms())
        if wait <= 0:
            return
        light = self.light_ms
        if light > 0:
            r = self.light(light)
            if r < 0:
                return
            if r < wait:                # declined: how soon it may say yes
                wait = r
        self.time.sleep_ms(wait)

    def _cycle(self, now, late):
        time = self.time
        st = self.stats
        dt = time.ticks_diff(now, self._last_cycle)
        self._last_cycle = now
        # the role may change its cycle (End: the cycle_ms setting from the app)
        self.cycle_ms = getattr(self.role, "cycle_ms", self.cycle_ms)
        if late >= self.cycle_ms:
            st.overruns += 1
            self._next_cycle = time.ticks_add(now, self.cycle_ms)
        else:
            self._next_cycle = time.ticks_add(self._next_cycle, self.cycle_ms)
        # awake share of the cycle that just ended (cycle start to cycle start)
        t0 = time.ticks_us()
        self._awake_us += time.ticks_diff(t0, self._wake_us)
        self._wake_us = t0
        elapsed = time.ticks_diff(t0, self._cycle_start_us)
        if elapsed >= 1000 and st.cycles > 0:
            p = self._awake_us // (elapsed // 1000)
            p = 1000 if p > 1000 else p
            st.awake_permille = p
            st.awake_avg_permille += (p - st.awake_avg_permille) // 8
        self._awake_us = 0
        st.light_ms = self._light_acc
        self._light_acc = 0
        self._cycle_start_us = t0
        self.role.cycle(dt)
        us = time.ticks_diff(time.ticks_us(), t0)
        st.last_cycle_us = us
        if us > st.max_cycle_us:
            st.max_cycle_us = us
        st.cycles += 1
        self.feed()

    def light(self, ms):
        """Light-sleep ms through the sleeper: -1 when it slept, else the ms to idle at most
        before asking again (declined: its retry_ms; raised - counted: MAX_SLEEP_MS)."""
        st = self.stats
        sl = self.sleeper
        try:
            if not sl.sleep(ms):
                return getattr(sl, "retry_ms", MAX_SLEEP_MS)
        except Exception:   # fail safe: no output touched, the loop idles in time.sleep_ms
            st.sleep_errors += 1
            if st.sleep_errors >= SLEEP_ERRORS_MAX:
                self._budget = None
            return MAX_SLEEP_MS
        st.light_sleeps += 1
        self._light_acc += ms
        return -1

    def run(self, max_cycles=0):
        """Loop forever (or until max_cycles cycles ran, for tests and benchmarks)."""
        st = self.stats
        while max_cycles <= 0 or st.cycles < max_cycles:
            self.once()


def make_safe(role, hw):
    """Outputs safe, whatever state the role is in. Never raises."""
    for obj in (role, hw):
        if obj is not None and hasattr(obj, "safe"):
            try:
                obj.safe()
            except Exception as e:  # the supervisor must get on to the reset
                print("safe() failed:", e)


def log_error(e, hw, where):
    """Print the traceback and keep it in <data_dir>/lasterror.txt for diag after the reset."""
    print("cellchain %s error:" % where)
    _print_exception(e, None)
    try:
        path = _data_dir(hw) + LASTERROR_FILE
        with open(path, "w") as f:
            f.write("%s %s: " % (role_name, where))
            _print_exception(e, f)
    except Exception as e2:  # a full or broken file system must not stop the reset
        print("could not write lasterror:", e2)


def _print_exception(e, f):
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        if f is None:
            pe(e)
        else:
            pe(e, f)
    else:  # CPython (host tests, simulator)
        msg = "%s: %s\n" % (type(e).__name__, e)
        if f is None:
            print(msg, end="")
        else:
            f.write(msg)


def _data_dir(hw):
    d = getattr(hw, "data_dir", None) if hw is not None else None
    return d if d else DATA_DIR


def reset_board(machine, hw):
    """The supervisor's own reset: marked first, so the next start does not report it as a
    watchdog reset (hal.board.reset_cause_name gives "supervisor")."""
    mark_intended_reset(_data_dir(hw))
    machine.reset()


def last_error(data_dir=DATA_DIR):
    try:
        with open(data_dir + LASTERROR_FILE) as f:
            return f.read(600)
    except OSError:
        return ""


def keep_fed(machine, loop):
    """After Ctrl-C: the control loop is stopped with outputs safe; a running watchdog (it cannot
    be stopped) is fed from a timer so the REPL stays usable. Returns the timer (or None)."""
    if loop is None or loop.stats.feeds == 0:
        return None

    def _cb(_t):
        loop.feed()

    period = loop._wdt_timeout_ms // 4
    for tid in (-1, 0):
        try:
            return machine.Timer(tid, period=period, callback=_cb)
        except (ValueError, OSError, TypeError):
            continue
    print("no timer for the watchdog: the board resets in", loop._wdt_timeout_ms, "ms")
    return None


def run(board_def, role_module):
    """Build hw and role, then loop forever under the supervisor (does not return on a board)."""
    global current_role, current_hw, current_board, current_loop, role_name, _repl_timer
    import machine
    import time

    from hal import board as hal_board

    role_name = role_name_of(role_module)
    current_board = board_def
    hw = None
    role = None
    try:
        hw = hal_board.make_hw(board_def, role_name)
        current_hw = hw
        role = role_module.make(hw, board_def)
        current_role = role
        from hal import sleep as hal_sleep
        loop = Loop(role, board_def, hw, machine, time, hal_sleep.make(board_def, hw, machine))
        current_loop = loop
    except KeyboardInterrupt:
        make_safe(role, hw)
        print("start-up interrupted; outputs safe")
        return
    except Exception as e:
        make_safe(role, hw)
        log_error(e, hw, "start-up")
        print("resetting in %d ms (Ctrl-C to stay at the REPL)" % START_FAIL_DELAY_MS)
        time.sleep_ms(START_FAIL_DELAY_MS)
        reset_board(machine, hw)
        return
    print("cellchain: %s on %s, cycle %d ms%s" % (role_name, getattr(board_def, "NAME", "?"), loop.cycle_ms,
                                                ", light sleep" if loop.sleeper is not None else ""))
    try:
        loop.run()
    except KeyboardInterrupt:
        make_safe(role, hw)
        # held here: an unreferenced rp2 Timer is cancelled by its finaliser at the next
        # garbage collection (gc.collect(), diag.show()) and the watchdog resets the board
        _repl_timer = keep_fed(machine, loop)
        print("loop stopped (Ctrl-C): outputs safe. import diag; diag.show()  -  machine.reset() restarts")
        return
    except Exception as e:
        make_safe(role, hw)
        log_error(e, hw, "loop")
        print("resetting in %d ms" % RESET_DELAY_MS)
        time.sleep_ms(RESET_DELAY_MS)
        reset_board(machine, hw)

"""Issue 21, part 1: a request/reply link that cannot slip (hypothesis).

The host client (cellchain.client.Client) talks to the real firmware handler
(core.app_protocol.AppProtocol) through a channel that misbehaves the ways a serial line, a
socket or a Bluetooth link does: a reply line is lost, delivered twice, or arrives late (after
the client gave up waiting, so during a later request); streamed data lines arrive in between.
Lines keep their order (TCP, a UART and a BLE connection do not reorder). Whatever happens,
a request the client answers must be answered with the board's own reply to *that* request,
and a wrong password must never give a session. The client may give up (LinkError) - it must
never guess."""
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from cellchain import client
from core import password
from core.app_protocol import AppProtocol
from test_app_protocol import Ctl

OWNER = "135790"
DATA_LINES = ("C_01_04_2BC_12C_00", "U_0AF0_+0014_+0014_+000A", "CS:001_0130013001300130")
REQUESTS = ("PW" + OWNER + "!", "PW0000!", "PW1234!", "PV" + OWNER + "!", "PV9999!", "ST?", "F?",
            "LK?", "A?", "S?", "S:capacity_ah=120!", "S:vmax_mv=9999!", "CL?", "V@", "E!", "D!")


class Board:
    """The real AppProtocol with the owner's password set; records its true reply to every
    command line (between the client's fences)."""

    def __init__(self):
        self.ctl = Ctl(4)
        self.ctl.settings.pw_salt = "0011223344556677"
        self.ctl.settings.pw_hash = password.make_hash(self.ctl.settings.pw_salt, OWNER)
        self.app = AppProtocol(self.ctl)
        self.truth = {}          # command line sent -> list of (reply lines) in order

    def open(self, sink):
        return self.app.open(lambda buf, n: sink(bytes(buf[:n])))


class FaultyChannel:
    """One connection to the board whose replies suffer the faults drawn by hypothesis."""

    def __init__(self, board, faults, stream=None):
        self.board = board
        self.faults = faults       # iterator of ("ok" | "lose" | "dup" | "late" | "data")
        self.out = []              # lines ready for the client
        self.late = []             # held back: delivered at the next write
        self._pending = b""
        self.slot = board.open(self._collect)
        self.closed = False

    def _collect(self, data):
        self._pending += data

    def _fault(self):
        try:
            return next(self.faults)
        except StopIteration:
            return "ok"

    def write(self, data):
        if self.closed:
            raise OSError("closed")
        self.out.extend(self.late)          # what was late arrives now, before the new replies
        self.late = []
        late = False
        for raw in data.split(b"\r")[:-1]:
            self._pending = b""
            self.board.app.feed(raw + b"\r", -1, self.slot)
            lines = [x.decode() for x in self._pending.split(b"\r")[:-1]]
            text = raw.decode()
            if not text.startswith("ID:"):
                self.board.truth.setdefault(text, []).append(lines)
                self.last_truth = (text, lines)
            for line in lines:
                f = self._fault()
                if f == "late":
                    late = True
                if f == "data":
                    (self.late if late else self.out).append(DATA_LINES[len(self.out) % 3])
                if f == "lose":
                    continue
                (self.late if late else self.out).append(line)
                if f == "dup":
                    (self.late if late else self.out).append(line)

    def read(self, timeout_s):
        if self.closed:
            raise client.LinkError("closed")
        if not self.out:
            time.sleep(min(timeout_s, 0.001))
            return b""
        line = self.out.pop(0)
        return line.encode() + b"\r"

    def close(self):
        if not self.closed:
            self.closed = True
            self.board.app.close(self.slot)


def _expect(cmd, result, truth):
    """``result`` (what the client returned for ``cmd``) must follow from the board's true reply."""
    if cmd.startswith(("PW", "PV")):
        assert result == (truth == ["OK"]), (cmd, result, truth)
        if result:
            assert cmd[2:-1] == OWNER                 # a wrong password never gives a session
    elif cmd == "ST?":
        assert truth[-1] == "OK" and result == client._kv(truth[0][3:])
    elif cmd == "F?":
        assert result == truth[0][2:]
    elif cmd == "V@":
        assert result == truth[0]
    elif cmd == "LK?":
        f = truth[0][3:].split()
        assert result == {"connection_ms": int(f[0]), "global_ms": int(f[1]), "global_failures": int(f[2])}
    elif cmd == "S?":
        assert truth[-1] == "OK" and len(result) == len(truth) - 1


def _call(c, cmd):
    if cmd.startswith("PW"):
        return c.login(cmd[2:-1])
    if cmd.startswith("PV"):
        return c.check_password(cmd[2:-1])
    if cmd == "ST?":
        return c.status()
    if cmd == "F?":
        return c.firmware()
    if cmd == "V@":
        return c.version()
    if cmd == "LK?":
        return c.lock_status()
    if cmd == "S?":
        return c.settings()
    if cmd == "CL?":
        return c.cells()
    if cmd == "A?":
        return c.alarms()
    if cmd in ("E!", "D!"):
        return c.stream(cmd == "E!")
    name, _, value = cmd[2:-1].partition("=")
    return c.set_setting(name, value)


FAULT = st.sampled_from(("ok", "ok", "ok", "lose", "dup", "late", "data"))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(cmds=st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=12),
       faults=st.lists(FAULT, max_size=80), same_stream=st.booleans())
def test_no_reply_is_ever_taken_for_another_requests(cmds, faults, same_stream):
    board = Board()
    it = iter(faults)
    ch = FaultyChannel(board, it)
    c = client.Client(ch, timeout_s=0.003)
    answered = 0
    for cmd in cmds:
        try:
            result = _call(c, cmd)
        except client.LinkError:
            assert c.broken
            if not same_stream:                  # socket / BLE: a new connection
                ch.close()
                ch = FaultyChannel(board, it)
            c = client.Client(ch, timeout_s=0.003)   # serial: the same line, late bytes and all
            continue
        except client.ProtocolError:
            # a refusal: the board's own reply to this very command was one
            assert ch.last_truth[0] == cmd and ch.last_truth[1][-1] == "NA", (cmd, ch.last_truth)
            continue
        answered += 1
        assert ch.last_truth[0] == cmd
        _expect(cmd, result, ch.last_truth[1])
    ch.close()


@settings(max_examples=200, deadline=None, database=None)
@given(faults=st.lists(FAULT, max_size=40), guesses=st.lists(st.sampled_from(("0000", "1234", "99999999", "135791")),
                                                            min_size=1, max_size=8))
def test_a_wrong_password_never_gives_a_session(faults, guesses):
    board = Board()
    it = iter(faults)
    for g in guesses:
        ch = FaultyChannel(board, it)
        c = client.Client(ch, timeout_s=0.003)
        try:
            assert not c.login(g)
        except client.LinkError:
            pass
        ch.close()


def test_clean_channel_answers_every_request():
    board = Board()
    ch = FaultyChannel(board, iter(()))
    c = client.Client(ch, timeout_s=0.05)
    assert c.login(OWNER)
    assert c.status()["cells"] == "4"
    assert c.firmware() == "0.1.2"
    assert not c.check_password("0000") and board.app.logged_in(ch.slot)
    assert c.lock_status()["global_failures"] == 1


def test_a_late_reply_is_never_the_next_ones():
    """Issue 21, item 1: one reply that came late made every later reply one request late - a
    wrong password then logged in, the right one was refused."""
    board = Board()
    faults = iter(["ok"] * 4 + ["late"] * 3)      # F?: 4 lines on time; the login's 3 late
    ch = FaultyChannel(board, faults)
    c = client.Client(ch, timeout_s=0.01)
    assert c.firmware() == "0.1.2"
    try:
        c.login(OWNER)
        raise AssertionError("the late reply was used")
    except client.LinkError:
        pass
    try:
        c.login("0000")
        raise AssertionError("a broken client sent another request")
    except client.LinkError as e:
        assert "reconnect" in str(e)
    c = client.Client(ch, timeout_s=0.05)           # the same line (serial): the late OK is there
    assert not c.login("0000")                      # ... and is not taken for this login
    assert c.login(OWNER)

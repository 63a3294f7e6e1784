"""usb_app: the app protocol on stdin/stdout with injected fakes (both interpreters)."""
import usb_app
from core.app_protocol import AppProtocol
from test_app_protocol import ROUND_4S, Ctl


class FakeIn:
    def __init__(self):
        self.data = bytearray()

    def readinto(self, buf):
        if not self.data:
            return 0
        buf[0] = self.data[0]
        self.data = self.data[1:]
        return 1


class FakePoller:
    def __init__(self, inp):
        self.inp = inp

    def poll(self, timeout_ms):
        return [1] if self.inp.data else []


class FakeOut:
    """A MicroPython stream: write(buf, n) writes the first n bytes."""

    def __init__(self):
        self.data = bytearray()

    def write(self, buf, n):
        for i in range(n):
            self.data.append(buf[i])
        return n


def make():
    ctl = Ctl(4)
    app = AppProtocol(ctl)
    inp = FakeIn()
    out = FakeOut()
    usb = usb_app.UsbApp(app, inp, out, FakePoller(inp))
    return app, usb, inp, out


def test_login_stream_over_usb():
    app, usb, inp, out = make()
    assert usb.slot == 0
    inp.data.extend(b"$PW1234!\rE!\r")
    assert usb.poll() == 12
    assert bytes(out.data) == b"OK\rOK\r"
    out.data = bytearray()
    app.stream_round()
    assert bytes(out.data) == ROUND_4S
    assert usb.poll() == 0


def test_poll_is_bounded_and_resumes():
    app, usb, inp, out = make()
    inp.data.extend(b"A" * 300 + b"\rPW1234!\r")
    assert usb.poll() == 128
    assert usb.poll() == 128
    usb.poll()
    usb.poll()
    assert bytes(out.data) == b"ERR:line too long\rNA\rOK\r"


def test_close_frees_the_session():
    app, usb, inp, out = make()
    inp.data.extend(b"PW1234!\r")
    usb.poll()
    assert app.logged_in(0)
    usb.close()
    assert usb.slot == -1 and not app.logged_in(0)
    inp.data.extend(b"PW1234!\r")
    assert usb.poll() == 0


class FakeRole:
    def __init__(self, app):
        self.app = app
        self.polls = 0

    def poll(self):
        self.polls += 1
        return 7


class FakeEndModule:
    def __init__(self):
        self.app = AppProtocol(Ctl(4))

    def make(self, hw, board_def):
        return FakeRole(self.app)


def test_end_wrapper_attaches_usb_and_chains_poll():
    inp = FakeIn()
    out = FakeOut()

    def factory(app):
        return usb_app.UsbApp(app, inp, out, FakePoller(inp))
    end = FakeEndModule()
    wrapper = usb_app._EndWithUsb(end, factory)
    assert wrapper.__name__.split(".")[-1] == "end"
    role = wrapper.make(None, None)
    assert role.usb_app is wrapper.usb
    inp.data.extend(b"PW1234!\r")
    assert role.poll() == 7 and role.polls == 1   # the role's own poll still runs
    assert bytes(out.data) == b"OK\r" and end.app.logged_in(0)


def test_end_wrapper_refuses_role_without_app():
    class NoApp:
        def make(self, hw, board_def):
            return object()
    wrapper = usb_app._EndWithUsb(NoApp())
    try:
        wrapper.make(None, None)
    except RuntimeError as e:
        assert "role.app" in str(e)
        return
    raise AssertionError("no error")

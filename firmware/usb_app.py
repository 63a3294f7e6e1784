"""The app protocol on the End board's USB serial port (same handler as Bluetooth).

At the REPL (stop main.py with Ctrl-C first), one call:

    >>> import usb_app; usb_app.run()

starts the End role exactly as main.py does (hal.loop: relays, brain, watchdog) and adds a
session of its app protocol (``role.app``, a core.app_protocol.AppProtocol) on the USB serial
port: the host then runs ``cellchain --serial /dev/ttyACM0 status`` (or any app command).
Ctrl-C (byte 0x03, never part of the protocol) stops the loop with the outputs safe, as usual.

``UsbApp(app)`` is the transport itself: ``poll()`` moves the bytes waiting on stdin into
``app.feed`` without blocking; replies and streamed lines go to stdout. The End role streams to
it in its own ``app.stream_round()``. Uses only ``sys`` and ``select`` (no hardware).
"""
import sys

from micropython import const

_MAX_BYTES_PER_POLL = const(128)


def _stdio(name):
    """sys.stdin / sys.stdout as a byte stream (its .buffer where the port has one)."""
    stream = getattr(sys, name)
    return getattr(stream, "buffer", stream)


class UsbApp:
    """One app-protocol session on the REPL's stdin/stdout."""

    def __init__(self, app, stdin=None, stdout=None, poller=None):
        self.app = app
        inp = stdin if stdin is not None else _stdio("stdin")
        out = stdout if stdout is not None else _stdio("stdout")
        self._in = inp
        self._readinto = inp.readinto
        self._write_out = out.write
        if poller is None:
            import select
            poller = select.poll()
            poller.register(inp, select.POLLIN)
        self._poller = poller
        self._one = bytearray(1)
        self.slot = app.open(self.write)
        self.written = 0

    def write(self, buf, n):
        """The protocol's writer: MicroPython streams take ``write(buf, n)`` (no slice)."""
        self._write_out(buf, n)
        self.written += n

    def poll(self):
        """Feed every byte waiting on stdin (up to a bound) to the protocol."""
        if self.slot < 0:
            return 0
        count = 0
        one = self._one
        while count < _MAX_BYTES_PER_POLL and self._poller.poll(0):
            if not self._readinto(one):
                break
            self.app.feed(one, 1, self.slot)
            count += 1
        return count

    def close(self):
        if self.slot >= 0:
            self.app.close(self.slot)
            self.slot = -1


class _EndWithUsb:
    """Looks like the roles.end module to hal.loop.run: builds the End role and attaches a
    UsbApp to its app protocol, polled on every wake-up of the loop."""

    __name__ = "roles.end"

    def __init__(self, end_module, usb_factory=None):
        self._end = end_module
        self._usb_factory = usb_factory if usb_factory is not None else UsbApp
        self.usb = None

    def make(self, hw, board_def):
        role = self._end.make(hw, board_def)
        app = getattr(role, "app", None)
        if app is None:
            raise RuntimeError("this End role has no app protocol (role.app)")
        usb = self._usb_factory(app)
        self.usb = usb
        inner = role.poll

        def poll():
            usb.poll()
            return inner()
        role.poll = poll
        role.usb_app = usb
        return role


def run(board_def=None):
    """REPL entry: run the End role with the app protocol on USB (see the module docstring)."""
    bd = board_def
    if bd is None:
        import board  # type: ignore[import-not-found]  # the image's board definition
        bd = board
    from hal import loop
    from roles import end
    loop.run(bd, _EndWithUsb(end))

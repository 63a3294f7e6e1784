"""Issue 21, part 4: fuzzing (hypothesis). Every malformed HTTP request to the dashboard gets a
4xx with a reason - never a 5xx, a traceback or invalid JSON - and no byte sequence on the app
link makes the End board's line parser raise or answer out of shape."""
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("bottle")

from core.app_protocol import LINE_MAX, AppProtocol  # noqa: E402
from test_app_protocol import Ctl  # noqa: E402
from test_dashboard_security import OWNER, Rig, _strict_json  # noqa: E402

ROUTES = ("/", "/api/info", "/api/login", "/api/logout", "/api/password", "/api/live", "/api/limits",
          "/api/settings", "/api/command", "/api/raw", "/api/history", "/api/history.csv",
          "/static/dashboard.html", "/static/../pack_link.py", "/api/", "/api/live/x")
QUERY_VALUES = st.sampled_from(("", "1", "24", "0", "-1", "1e308", "nan", "inf", "-inf", "abc", "%00", "1" * 40,
                                "0x10", "1_000", "+5", " 3", "%ff%fe", "2000", "720.5"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) |
    st.text(max_size=30) | st.sampled_from(("1234", OWNER, "vmax_mv", "mode", "critical", "ST?", "S?",
                                            "ST?\rPW1234!", "P$W1234!", "S:vmax_mv=4000!", "preset", "nmc")),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)
BODY_KEYS = st.sampled_from(("password", "name", "value", "kind", "arg", "line", "old", "new", "x"))
BODIES = (st.dictionaries(BODY_KEYS, JSON_VALUES, max_size=4).map(lambda d: json.dumps(d).encode()) |
          JSON_VALUES.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
HOSTS = st.sampled_from(("127.0.0.1:8124", "127.0.0.1:8124", "localhost", "evil.example", "127.0.0.1:x", "",
                         "[::1]:8124", "[::1", "LOCALHOST:8124", "127.0.0.1.evil.example"))
ORIGINS = st.sampled_from((None, None, "http://127.0.0.1:8124", "null", "http://evil.example", "garbage", "https://localhost"))
CONTENT_TYPES = st.sampled_from(("application/json", "application/json", "text/plain", "",
                                 "application/x-www-form-urlencoded", "application/json; charset=utf-8"))


@pytest.fixture(scope="module")
def fuzz_rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("fuzz"), direct=True)
    yield r
    r.close()


@settings(max_examples=1200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_http_request_gets_a_5xx_or_invalid_json(fuzz_rig, data):
    page = fuzz_rig.page(host=data.draw(HOSTS))
    if data.draw(st.booleans()):                        # a logged-in page half of the time
        page.host = "127.0.0.1:8124"
        code, r = page.post("/api/login", {"password": OWNER})
        if code != 200:                                  # the page's own backoff after fuzzed guesses
            fuzz_rig.dash.limiter.clients.clear()
            with fuzz_rig.lock:
                fuzz_rig.app.lockout.reset()
            code, r = page.post("/api/login", {"password": OWNER})
        assert code == 200, r
        page.host = data.draw(HOSTS)
        if data.draw(st.booleans()):
            page.csrf = data.draw(st.sampled_from(("", "x", "0" * 32)))
    method = data.draw(st.sampled_from(("GET", "POST", "POST", "PUT", "DELETE", "HEAD")))
    path = data.draw(st.sampled_from(ROUTES) | st.text(max_size=20).map(lambda t: "/api/" + t))
    keys = data.draw(st.lists(st.sampled_from(("hours", "points", "x")), max_size=3))
    query = "&".join("%s=%s" % (k, data.draw(QUERY_VALUES)) for k in keys)
    body = data.draw(BODIES) if method == "POST" else b""
    origin = data.draw(ORIGINS)
    code, text = page.call(method, path + ("?" + query if query else ""), raw=body,
                           content_type=data.draw(CONTENT_TYPES), headers={"Origin": origin})
    assert code < 500, (method, path, query, body, code, text[:300])
    if method != "HEAD" and (code >= 400 or (path.startswith("/api/") and "csv" not in path)):
        out = _strict_json(text)                         # JSON, no NaN / Infinity
        if code >= 400:
            assert out["error"], (path, code, text)
    if method == "POST" and path == "/api/settings" and code == 200:
        # a successful write went through the board's rules: the pack's limits stay sane
        st_ = fuzz_rig.ctl.settings
        assert st_.vmin_mv + 200 <= st_.vbal_mv <= st_.vmax_mv - 10


class Out:
    def __init__(self):
        self.data = bytearray()

    def write(self, buf, n):
        self.data += bytes(buf[:n])


LINE_BYTES = st.lists(st.sampled_from(
    [b"PW1234!", b"PW135790!", b"PV0000!", b"ID:abc?", b"ID:?", b"S?", b"ST?", b"E!", b"D!", b"V@", b"F?", b"LK?",
     b"S:vmax_mv=3650!", b"S:name=x!", b"PC:1234:567890!", b"CH:nmc!", b"MO:critical!", b"A?", b"CL?", b"EV?",
     b"ZC!", b"\r", b"\n", b"$", b"\x00", b"\xff", b"!", b":", b"=", b"X" * 70]) | st.binary(max_size=12),
    max_size=30).map(b"".join)


@settings(max_examples=800, deadline=None, database=None)
@given(stream=LINE_BYTES, cuts=st.lists(st.integers(1, 40), max_size=10))
def test_the_app_line_parser_never_raises_and_every_reply_is_well_formed(stream, cuts):
    ctl = Ctl(4)
    app = AppProtocol(ctl)
    out = Out()
    slot = app.open(out.write)
    pos = 0
    for n in cuts + [len(stream)]:
        chunk = stream[pos:pos + n]
        app.feed(chunk, len(chunk), slot)
        pos += n
        app.stream_round()
        app.tick(1000)
    s = app.sessions[slot]
    assert 0 <= s.n <= LINE_MAX
    data = bytes(out.data)
    assert not data or data.endswith(b"\r")
    for line in data.split(b"\r")[:-1]:
        assert line and all(32 <= b < 127 for b in line), line      # printable, never empty
    assert data.count(b"\r") <= 4 * (stream.count(b"\r") + 1) * 40  # bounded by the commands sent
    # the settings the fuzzed writes left are a set the board's rules accept
    from core import settings as cs
    assert cs.check(ctl.settings) is None

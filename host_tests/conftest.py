"""pytest set-up: the firmware sources and the CPython shim for the ``micropython`` module, and
nothing left in /tmp: the session gets its own temporary folder (TMPDIR, also for the
subprocesses it starts), core tests' support.tmpdir() folders go after each test, and a test
that leaves anything else behind fails the run."""
import os
import shutil
import sys
import tempfile

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("host_shims", "firmware", "host_tests/core", ""):
    p = os.path.join(_ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)


@pytest.fixture(autouse=True)
def _remove_core_test_folders():
    yield
    support = sys.modules.get("support")
    if support is not None and hasattr(support, "cleanup"):
        support.cleanup()


_SESSION_TMP = []


def pytest_configure(config):
    base = tempfile.mkdtemp(prefix="cellchain-pytest-")
    _SESSION_TMP.append(base)
    os.environ["TMPDIR"] = base
    tempfile.tempdir = base


def pytest_sessionfinish(session, exitstatus):
    if not _SESSION_TMP:
        return
    base = _SESSION_TMP.pop()
    left = sorted(n for n in os.listdir(base) if not n.startswith("pytest-of-"))
    if left:
        print("\nERROR: the tests left these in the temporary folder (use tmp_path or clean up): %s"
              % ", ".join(left[:20]), file=sys.stderr)
        if session.exitstatus == 0:
            session.exitstatus = 1
    shutil.rmtree(base, ignore_errors=True)

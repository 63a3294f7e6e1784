"""Run the dual-interpreter tests (host_tests/core/test_*.py) on the MicroPython Unix port.

Usage: micropython tools/mp_test_runner.py [--import-all DIR] [--only PREFIX] TEST_DIR [SOURCE_DIR ...]
Imports every test module, calls each ``test_*`` function, prints one line per failure and a
closing ``micropython: N passed, N failed``; exits 1 on any failure or when nothing ran.
``--import-all DIR`` first imports every module of a firmware package (e.g. firmware/core), so a
module using a CPython-only feature fails here even before a test touches it.
"""
import os
import sys


def _modules(folder, prefix=""):
    names = []
    for entry in os.listdir(folder):
        if entry.endswith(".py") and entry.startswith(prefix):
            names.append(entry[:-3])
    names.sort()
    return names


def _cleanup():
    """The test's temporary folders (support.tmpdir) go after each test."""
    support = sys.modules.get("support")
    if support is not None and hasattr(support, "cleanup"):
        try:
            support.cleanup()
        except OSError as e:
            print("warning: could not remove a test folder: %r" % (e,))


def main(argv):
    import_all = []
    only = []
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "--import-all":
            import_all.append(argv[i + 1])
            i += 2
        elif argv[i] == "--only":
            only.append(argv[i + 1])
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if not rest:
        print("usage: mp_test_runner.py [--import-all PKGDIR] TEST_DIR [SOURCE_DIR ...]")
        return 2
    test_dir = rest[0]
    for src in rest[1:]:
        sys.path.insert(0, src)
    sys.path.insert(0, test_dir)
    passed = 0
    failed = 0
    for pkg_dir in import_all:
        pkg = pkg_dir.rstrip("/").split("/")[-1]
        for name in _modules(pkg_dir):
            if name == "__init__":
                continue
            try:
                __import__(pkg + "." + name)
                passed += 1
            except Exception as e:  # report and go on: one broken module must not hide others
                failed += 1
                print("FAIL import %s.%s: %s" % (pkg, name, e))
                sys.print_exception(e)
    for mod_name in _modules(test_dir, "test_"):
        if only and not any(mod_name.startswith(o) for o in only):
            continue
        try:
            mod = __import__(mod_name)
        except Exception as e:
            failed += 1
            print("FAIL import %s: %s" % (mod_name, e))
            sys.print_exception(e)
            continue
        count = 0
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
                count += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %r" % (mod_name, attr, e))
                sys.print_exception(e)
            _cleanup()
        print("  %-28s %d passed" % (mod_name, count))
    print("micropython: %d passed, %d failed" % (passed, failed))
    if failed or not passed:
        return 1
    return 0


sys.exit(main(sys.argv[1:]))

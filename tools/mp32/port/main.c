// 32-bit measurement port for tools/role_heap.py (cellchain): runs one script (argv[1], the rest
// in sys.argv) with a 2 MB GC heap; every imported file (.mpy or .py) is read once into memory
// outside the GC heap and loaded in place (MP_READER_IS_ROM), as MicroPython loads modules from a
// ROMFS partition (MICROPY_LOADER=copy: copied into the heap, as from a filesystem).
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "py/builtin.h"
#include "py/compile.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/reader.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/runtime/gchelper.h"

static char heap[2 * 1024 * 1024];

void mp_hal_stdout_tx_strn_cooked(const char *str, size_t len) {
    fwrite(str, 1, len, stdout);
}
void mp_hal_stdout_tx_strn(const char *str, size_t len) {
    fwrite(str, 1, len, stdout);
}
int mp_hal_stdin_rx_chr(void) {
    return -1;
}

mp_import_stat_t mp_import_stat(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) {
        return S_ISDIR(st.st_mode) ? MP_IMPORT_STAT_DIR : MP_IMPORT_STAT_FILE;
    }
    return MP_IMPORT_STAT_NO_EXIST;
}

// The file's bytes in malloc'd memory that is never freed (the "ROM"), plus a NUL after them.
void mp_reader_new_file(mp_reader_t *reader, qstr filename) {
    const char *name = qstr_str(filename);
    FILE *f = fopen(name, "rb");
    if (f == NULL) {
        mp_raise_OSError(MP_ENOENT);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(len + 1);
    if (data == NULL || fread(data, 1, len, f) != (size_t)len) {
        fclose(f);
        mp_raise_OSError(MP_EIO);
    }
    fclose(f);
    data[len] = 0;
    // MICROPY_LOADER=copy: load like from a filesystem (the bytecode copied into the heap)
    const char *mode = getenv("MICROPY_LOADER");
    bool copy = mode != NULL && strcmp(mode, "copy") == 0;
    mp_reader_new_mem(reader, data, len, copy ? 0 : MP_READER_IS_ROM);
}

mp_lexer_t *mp_lexer_new_from_file(qstr filename) {
    mp_reader_t reader;
    mp_reader_new_file(&reader, filename);
    return mp_lexer_new(filename, reader);
}

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    fprintf(stderr, "FATAL: uncaught NLR %p\n", val);
    exit(1);
}

void MP_NORETURN __fatal_error(const char *msg) {
    fprintf(stderr, "FATAL: %s\n", msg);
    exit(1);
}

#ifndef NDEBUG
void MP_WEAK __assert_func(const char *file, int line, const char *func, const char *expr) {
    fprintf(stderr, "Assertion '%s' failed, at file %s:%d\n", expr, file, line);
    exit(1);
}
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    mp_stack_ctrl_init();
    mp_stack_set_limit(400 * 1024);
    gc_init(heap, heap + sizeof(heap));
    mp_init();
    mp_obj_list_init(MP_OBJ_TO_PTR(mp_sys_path), 0);
    mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR_));
    mp_obj_list_init(MP_OBJ_TO_PTR(mp_sys_argv), 0);
    for (int i = 1; i < argc; i++) {
        mp_obj_list_append(mp_sys_argv, mp_obj_new_str(argv[i], strlen(argv[i])));
    }
    int ret = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_lexer_t *lex = mp_lexer_new_from_file(qstr_from_str(argv[1]));
        qstr source_name = lex->source_name;
        mp_parse_tree_t parse_tree = mp_parse(lex, MP_PARSE_FILE_INPUT);
        mp_obj_t module_fun = mp_compile(&parse_tree, source_name, false);
        mp_call_function_0(module_fun);
        nlr_pop();
    } else {
        mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
        if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_SystemExit))) {
            mp_obj_t v = mp_obj_exception_get_value(exc);
            ret = (v == mp_const_none) ? 0 : (mp_obj_is_small_int(v) ? MP_OBJ_SMALL_INT_VALUE(v) : 1);
            if (!mp_obj_is_small_int(v) && v != mp_const_none) {
                mp_obj_print(v, PRINT_STR);
                printf("\n");
            }
        } else {
            mp_obj_print_exception(&mp_plat_print, exc);
            ret = 1;
        }
    }
    fflush(stdout);
    mp_deinit();
    return ret;
}

static mp_obj_t m32_open(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    (void)n_args;
    (void)args;
    (void)kwargs;
    mp_raise_OSError(MP_ENOENT);
}
MP_DEFINE_CONST_FUN_OBJ_KW(mp_builtin_open_obj, 1, m32_open);

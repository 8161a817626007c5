/* Unit tests for input.c: whole-file reads and UTF-8 checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "input.h"
#include "testutil.h"

static void reads_whole_files(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "f", "a\0b", 3);
    char *data;
    size_t len;
    assert_int_equal(input_read_file(path, 3, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "a\0b", 4);
    input_free_wiped(data, len);

    assert_int_equal(input_read_file(path, 2, &data, &len), EFBIG);
    assert_null(data);
    assert_int_equal(input_read_file(dir, 10, &data, &len), EISDIR);
    char *missing;
    if (asprintf(&missing, "%s/missing", dir) < 0)
        abort();
    assert_int_equal(input_read_file(missing, 10, &data, &len), ENOENT);
    char *fifo;
    if (asprintf(&fifo, "%s/fifo", dir) < 0)
        abort();
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(input_read_file(fifo, 10, &data, &len), EINVAL); /* never blocks */
    free(fifo);
    free(missing);
    free(path);
    remove_tree(dir);
    free(dir);
}

static void utf8_rules(void **state)
{
    (void)state;
    assert_true(utf8_valid(""));
    assert_true(utf8_valid("plain ascii"));
    assert_true(utf8_valid("ünïcødé ✓ 🐘"));
    assert_false(utf8_valid("\xff"));
    assert_false(utf8_valid("\xc0\xaf"));         /* overlong '/' */
    assert_false(utf8_valid("\xe0\x80\xaf"));     /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80"));     /* surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80")); /* above U+10FFFF */
    assert_false(utf8_valid("\xe2\x9c"));         /* cut short */
    assert_int_equal(utf8_sequence_length((const unsigned char *)"\xf0\x9f\x90\x98"), 4);
}

/* extension_list_load_file: the file's entries, problems named by the file. */
static void extension_file_loading(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "ext", "postgis\nhstore:public\n", 22);
    struct extension_list l = {0};
    struct diag d;
    diag_init(&d);
    assert_int_equal(extension_list_load_file(&l, path, &d), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1].schema, "public");
    free(path);
    path = write_file(dir, "ext", "Bad\n", 4);
    assert_int_equal(extension_list_load_file(&l, path, &d), -1);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s line 1: \"Bad\" is not a valid extension entry; expected "
             "name[:schema] with lowercase identifiers ([a-z_][a-z0-9_$]*, at most 63 bytes)", path);
    assert_true(diag_has(&d, DIAG_ERROR, msg));
    extension_list_free(&l);
    diag_free(&d);
    free(path);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_whole_files),
        cmocka_unit_test(utf8_rules),
        cmocka_unit_test(extension_file_loading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

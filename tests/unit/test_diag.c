/* Unit tests for diag.c: order, severity, counting, formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "diag.h"

static void collects_in_order_with_severity(void **state)
{
    (void)state;
    struct diag d;
    diag_init(&d);
    assert_int_equal(diag_error_count(&d), 0);
    diag_warn(&d, "%s: %d days left", "server.crt", 12);
    for (int i = 0; i < 20; i++)
        diag_error(&d, "problem %d", i);
    assert_int_equal(d.count, 21);
    assert_int_equal(diag_error_count(&d), 20);
    assert_int_equal(d.items[0].severity, DIAG_WARNING);
    assert_string_equal(d.items[0].message, "server.crt: 12 days left");
    assert_string_equal(d.items[20].message, "problem 19");
    diag_free(&d);
    assert_int_equal(d.count, 0);
    assert_null(d.items);
    diag_free(&d); /* freeing twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(collects_in_order_with_severity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

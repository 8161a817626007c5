/* Unit tests for the pure parts of workers.c: the GROUP argument of drain-group and
 * remove-group, and which background job states are final. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "workers.h"

static void group_numbers(void **unused)
{
    (void)unused;
    int g = -1;
    assert_true(workers_parse_group("1", &g) && g == 1);
    assert_true(workers_parse_group("12", &g) && g == 12);
    assert_true(workers_parse_group("2147483647", &g) && g == 2147483647);
    /* the coordinator is no worker group; nothing but digits */
    const char *bad[] = {"0", "00", "", "-1", "+1", " 1", "1 ", "1a", "x1", "2147483648",
                         "99999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = -1;
        assert_false(workers_parse_group(bad[i], &g));
        assert_int_equal(g, 0);
    }
    assert_false(workers_parse_group(NULL, &g));
}

static void job_states(void **unused)
{
    (void)unused;
    const char *final[] = {"finished", "cancelled", "failed"};
    const char *going[] = {"scheduled", "running", "cancelling", "failing", "", "FINISHED"};
    for (size_t i = 0; i < 3; i++)
        assert_true(workers_job_state_final(final[i]));
    for (size_t i = 0; i < sizeof going / sizeof going[0]; i++)
        assert_false(workers_job_state_final(going[i]));
    assert_false(workers_job_state_final(NULL));
}

static void group_lists(void **unused)
{
    (void)unused;
    int g[4], n = -1;
    char array[64];
    assert_true(workers_parse_group_list("", g, 4, &n) && n == 0);
    workers_group_array(g, n, array, sizeof array);
    assert_string_equal(array, "{}");
    assert_true(workers_parse_group_list("2", g, 4, &n) && n == 1 && g[0] == 2);
    assert_true(workers_parse_group_list("3,1,12", g, 4, &n) && n == 3);
    assert_true(g[0] == 3 && g[1] == 1 && g[2] == 12);
    workers_group_array(g, n, array, sizeof array);
    assert_string_equal(array, "{3,1,12}");
    const char *bad[] = {",", "1,", ",1", "1,,2", "0", "1,0", "1, 2", "a", "1,1", "-1",
                         "1,2,3,4,5", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(workers_parse_group_list(bad[i], g, 4, &n));
    }
    assert_false(workers_parse_group_list(NULL, g, 4, &n));
    /* truncation never overruns */
    assert_true(workers_parse_group_list("1000,2000,3000", g, 4, &n));
    workers_group_array(g, n, array, 8);
    assert_int_equal(strlen(array), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(group_numbers),
        cmocka_unit_test(job_states),
        cmocka_unit_test(group_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

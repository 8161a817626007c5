/* Unit tests for the pure parts of workers.c: the GROUP argument of drain-group and
 * remove-group, and which background job states are final. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(group_numbers),
        cmocka_unit_test(job_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the pure parts of catalog.c, backup.c and restorepoint.c: restore point
 * names and times, catalogue documents, S3 listing pages and error answers, pgBackRest's
 * info, archive progress, the backup set and the restore point a time resolves to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "catalog.h"
#include "restorepoint.h"

static void names_and_times(void **unused)
{
    (void)unused;
    time_t t = 1796181300; /* 2026-12-02T03:15:00Z */
    char buf[64];
    catalog_name_for(t, buf, sizeof buf);
    assert_string_equal(buf, "citus-20261202T031500Z");
    time_t back = 0;
    assert_true(catalog_name_time(buf, &back));
    assert_int_equal(back, t);
    catalog_format_time(t, buf, sizeof buf);
    assert_string_equal(buf, "2026-12-02T03:15:00Z");
    assert_true(catalog_parse_time("2026-12-02T03:15:00Z", &back) && back == t);
    assert_true(catalog_parse_time("2026-12-02T03:15:00.250Z", &back) && back == t);
    assert_true(catalog_parse_time("2026-12-02T03:15:00+00:00", &back) && back == t);
    assert_false(catalog_parse_time("2026-12-02T03:15:00+01:00", &back));
    assert_false(catalog_parse_time("2026-02-30T03:15:00Z", &back));
    assert_false(catalog_parse_time("2026-12-02 03:15:00Z", &back));
    /* only the generated form carries a time */
    assert_false(catalog_name_time("citus-20261202T031500", &back));
    assert_false(catalog_name_time("citus-20261232T031500Z", &back));
    assert_false(catalog_name_time("before-upgrade", &back));
    assert_true(catalog_name_valid("before-upgrade.1_x"));
    assert_false(catalog_name_valid(".."));
    assert_false(catalog_name_valid("a/b"));
    assert_false(catalog_name_valid(""));
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_false(catalog_name_valid(long_name));
}

static void documents(void **unused)
{
    (void)unused;
    char *name = NULL;
    time_t t = 0;
    const char *doc = "{\"name\":\"x1\",\"time\":\"2026-12-02T03:15:00Z\",\"groups\":{}}";
    assert_true(catalog_parse_entry(doc, strlen(doc), &name, &t));
    assert_string_equal(name, "x1");
    assert_int_equal(t, 1796181300);
    free(name);
    const char *bad[] = {"{\"name\":\"x1\"}", "[]", "not json",
                         "{\"name\":\"a/b\",\"time\":\"2026-12-02T03:15:00Z\"}"};
    for (size_t i = 0; i < 4; i++)
        assert_false(catalog_parse_entry(bad[i], strlen(bad[i]), &name, &t));
}

struct keys {
    char seen[8][128];
    int n;
};

static void collect(const char *key, void *ctx)
{
    struct keys *k = ctx;
    if (k->n < 8)
        strcpy(k->seen[k->n++], key);
}

static void s3_answers(void **unused)
{
    (void)unused;
    const char *page =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3."
        "amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1=</NextContinuationToken>"
        "<Contents><Key>p/a.json</Key><Size>3</Size></Contents>"
        "<Contents><Key>p/b&amp;c.json</Key></Contents></ListBucketResult>";
    struct keys k = {0};
    bool truncated = false;
    char *token = NULL;
    assert_true(catalog_s3_parse_list(page, strlen(page), collect, &k, &truncated, &token));
    assert_int_equal(k.n, 2);
    assert_string_equal(k.seen[0], "p/a.json");
    assert_string_equal(k.seen[1], "p/b&c.json");
    assert_true(truncated);
    assert_string_equal(token, "tok&1=");
    free(token);
    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    k.n = 0;
    assert_true(catalog_s3_parse_list(last, strlen(last), collect, &k, &truncated, &token));
    assert_false(truncated);
    assert_null(token);
    assert_int_equal(k.n, 0);
    const char *err = "<Error><Code>AccessDenied</Code><Message>no &lt;way&gt;</Message></Error>";
    assert_false(catalog_s3_parse_list(err, strlen(err), collect, &k, &truncated, &token));
    char *code = catalog_xml_element(err, strlen(err), "Code");
    char *msg = catalog_xml_element(err, strlen(err), "Message");
    assert_string_equal(code, "AccessDenied");
    assert_string_equal(msg, "no <way>");
    free(code);
    free(msg);
    /* truncated without a token cannot go on */
    const char *stuck = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
    assert_false(catalog_s3_parse_list(stuck, strlen(stuck), collect, &k, &truncated, &token));
}

static const char info[] =
    "[{\"name\":\"demo-0\",\"backup\":["
    "{\"label\":\"20261201-010000F\",\"type\":\"full\",\"timestamp\":{\"start\":100,\"stop\":150},"
    "\"lsn\":{\"start\":\"0/2000028\",\"stop\":\"0/2000100\"},"
    "\"info\":{\"size\":1000,\"delta\":1000,\"repository\":{\"size\":300,\"delta\":300}}},"
    "{\"label\":\"20261201-010000F_20261202-010000D\",\"type\":\"diff\","
    "\"timestamp\":{\"start\":200,\"stop\":260},"
    "\"lsn\":{\"start\":\"0/5000028\",\"stop\":\"0/5000100\"},"
    "\"info\":{\"size\":1100,\"delta\":100,\"repository\":{\"size\":330,\"delta\":30}}}],"
    "\"status\":{\"code\":0}}]";

static void pgbackrest_info(void **unused)
{
    (void)unused;
    char label[64];
    long long size = 0, repo = 0;
    assert_int_equal(backup_info_count(info, strlen(info)), 2);
    assert_int_equal(backup_info_count("[{\"name\":\"x\",\"backup\":[]}]", 27), 0);
    assert_int_equal(backup_info_count("{}", 2), -1);
    assert_true(backup_info_latest(info, strlen(info), NULL, 0, label, sizeof label, &size, &repo));
    assert_string_equal(label, "20261201-010000F_20261202-010000D");
    assert_int_equal(size, 1100);
    assert_int_equal(repo, 330);
    assert_true(backup_info_latest(info, strlen(info), "full", 0, label, sizeof label, &size,
                                   &repo));
    assert_string_equal(label, "20261201-010000F");
    assert_false(backup_info_latest(info, strlen(info), NULL, 201, label, sizeof label, &size,
                                    &repo));
    unsigned long long lsn = 0;
    assert_true(backup_parse_lsn("0/5000100", &lsn) && lsn == 0x5000100ULL);
    assert_true(backup_parse_lsn("1A/0", &lsn) && lsn == 0x1AULL << 32);
    assert_false(backup_parse_lsn("0/5000100x", &lsn));
    /* the backup set for a position: the newest that stopped at or before it */
    assert_true(backup_info_before(info, strlen(info), 0x5000100ULL, label, sizeof label));
    assert_string_equal(label, "20261201-010000F_20261202-010000D");
    assert_true(backup_info_before(info, strlen(info), 0x50000FFULL, label, sizeof label));
    assert_string_equal(label, "20261201-010000F");
    assert_false(backup_info_before(info, strlen(info), 0x2000000ULL, label, sizeof label));
    enum backup_type type;
    assert_true(backup_parse_type("diff", &type) && type == BACKUP_DIFF);
    assert_false(backup_parse_type("weekly", &type));
}

static void archive_progress(void **unused)
{
    (void)unused;
    const char *target = "000000010000000000000005";
    assert_true(restorepoint_wal_reached("000000010000000000000005", target));
    assert_true(restorepoint_wal_reached("00000001000000000000000A", target));
    assert_true(restorepoint_wal_reached("000000010000000100000000", target));
    assert_true(restorepoint_wal_reached("000000010000000000000006.00000028.backup", target));
    assert_false(restorepoint_wal_reached("000000010000000000000004", target));
    assert_false(restorepoint_wal_reached("000000010000000000000005.partial", target));
    assert_false(restorepoint_wal_reached("000000020000000000000006", target));
    assert_false(restorepoint_wal_reached("00000002.history", target));
    assert_false(restorepoint_wal_reached("-", target));
    assert_false(restorepoint_wal_reached("", target));
}

static void time_to_restore_point(void **unused)
{
    (void)unused;
    struct catalog_entry items[] = {{"a", 100}, {"b", 200}, {"c", 300}};
    struct catalog_list l = {items, 3};
    assert_null(restorepoint_latest_at(&l, 99));
    assert_string_equal(restorepoint_latest_at(&l, 100)->name, "a");
    assert_string_equal(restorepoint_latest_at(&l, 299)->name, "b");
    assert_string_equal(restorepoint_latest_at(&l, 1000)->name, "c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_times),     cmocka_unit_test(documents),
        cmocka_unit_test(s3_answers),          cmocka_unit_test(pgbackrest_info),
        cmocka_unit_test(archive_progress),    cmocka_unit_test(time_to_restore_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

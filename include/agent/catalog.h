/* catalog.h: the catalogue of available restore points, in the backup repository beside
 * pgBackRest's files (docs/backups.md, Catalogue).
 *
 * One JSON document per restore point at <repo path>/citus-restore-points/<cluster>/<name>.json:
 * a file (posix repository; written atomically, 0600) or an object (s3; requests signed by
 * libcurl with CURLOPT_AWS_SIGV4, https only, the endpoint, bucket, region, URI style and CA
 * of struct backup_config, the keys of the repository reference given).
 *
 * Every call blocks (the commands call them directly, the agent from a child process of its
 * own, backup.h). Errors go to d naming the file, or the endpoint, bucket and key with the
 * HTTP status and S3's error Code; never a key. */
#ifndef CITUS_INIT_CATALOG_H
#define CITUS_INIT_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "diag.h"

/* Where: the object store settings (repo type, S3 endpoint ...) and one repository (our own,
 * or a restore's source), all borrowed; the CA, when BACKUP_S3_CA_FILE is set, is the
 * preparation's copy RUN_DIR/BACKUP_CA_COPY (readable by RUN_AS_USER, like pgBackRest's). */
struct catalog_repo {
    const struct backup_config *backup;
    const struct backup_repo_ref *ref;
    const char *run_dir;
};

/* The catalogue of our repository (source false) or of the restore's source. */
static inline struct catalog_repo catalog_repo_of(const struct config *cfg, bool source)
{
    return (struct catalog_repo){&cfg->backup, source ? &cfg->backup.source : &cfg->backup.own,
                                 cfg->run_dir};
}

struct catalog_entry {
    char *name;
    time_t time;     /* the restore point's creation (UTC) */
};

struct catalog_list {
    struct catalog_entry *items; /* sorted by time, then name */
    size_t count;
};

/* Store json as <name>.json of cluster. 0, or -1 with the reason in d. */
int catalog_write(const struct catalog_repo *repo, const char *cluster, const char *name,
                  const char *json, struct diag *d);
/* The document of one restore point: 0 with a malloc'd text in *json; 1 when there is none
 * (no error added); -1 with the reason in d. */
int catalog_read(const struct catalog_repo *repo, const char *cluster, const char *name,
                 char **json, struct diag *d);
/* Every restore point of cluster (none is not an error). Generated names carry their time
 * (catalog_name_time); the others' documents are read for it. 0, or -1 with d. */
int catalog_list(const struct catalog_repo *repo, const char *cluster, struct catalog_list *out,
                 struct diag *d);
void catalog_list_free(struct catalog_list *l);
/* Remove the entry name of cluster: 0 (also when it was not there), or -1 with the reason
 * in d. */
int catalog_remove(const struct catalog_repo *repo, const char *cluster, const char *name,
                   struct diag *d);

/* --- pure helpers, exposed for unit tests --- */

/* A restore point (or cluster) name as a file name: restore_point_name_valid (1-63 of
 * A-Za-z0-9_.-), not . or .. */
bool catalog_name_valid(const char *name);
/* The generated name of a restore point created at t: citus-YYYYMMDDTHHMMSSZ (UTC). */
void catalog_name_for(time_t t, char *buf, size_t size);
/* The time a generated name (exactly that form) stands for; false for any other name. */
bool catalog_name_time(const char *name, time_t *t);
/* RFC 3339 UTC, second precision: 2026-12-02T03:15:00Z. */
void catalog_format_time(time_t t, char *buf, size_t size);
/* Parse YYYY-MM-DDTHH:MM:SS[.fraction]Z (or +00:00; the fraction is ignored). */
bool catalog_parse_time(const char *text, time_t *t);
/* The name and time of a catalogue document; false when it is not one. *name malloc'd. */
bool catalog_parse_entry(const char *json, size_t len, char **name, time_t *t);

/* One page of a ListObjectsV2 answer: the Key elements in order (each passed to fn), whether
 * it is truncated and the next continuation token (malloc'd, NULL when none). XML entities
 * in values are decoded. false when the text is not a ListBucketResult. */
typedef void (*catalog_key_fn)(const char *key, void *ctx);
bool catalog_s3_parse_list(const char *xml, size_t len, catalog_key_fn fn, void *ctx,
                           bool *truncated, char **next_token);
/* The text of the first <tag>...</tag> element of an XML text (entities decoded), malloc'd,
 * or NULL. Used for S3 error answers (<Code>, <Message>). */
char *catalog_xml_element(const char *xml, size_t len, const char *tag);

#endif

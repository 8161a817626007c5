/* input.h: reading untrusted input (mounted files, environment text) safely.
 * Shared by config (secrets, EXTENSIONS_FILE), tls (PEM files) and log (escaping). */
#ifndef CITUS_INIT_INPUT_H
#define CITUS_INIT_INPUT_H

#include <stdbool.h>
#include <stddef.h>

/* Reads a whole regular file of at most max bytes (following symlinks, as Kubernetes secret
 * volumes need). Returns 0 with a malloc'd NUL-terminated copy in *data and its length in
 * *len (the content may hold NUL bytes: compare strlen with *len), or an errno value:
 * EFBIG when larger than max, EISDIR for a directory, EINVAL for another non-regular file.
 * Partial reads are wiped before they are freed (the file may hold a secret). */
int input_read_file(const char *path, size_t max, char **data, size_t *len);

/* Wipes and frees what input_read_file returned (or any malloc'd secret text). */
void input_free_wiped(char *data, size_t len);

/* Length (1..4) of the well-formed UTF-8 sequence at s, or 0 when it is malformed
 * (overlong forms, surrogates and values above U+10FFFF are malformed). s[0] must not be NUL. */
size_t utf8_sequence_length(const unsigned char *s);

/* Whole NUL-terminated string is well-formed UTF-8. */
bool utf8_valid(const char *s);

#endif

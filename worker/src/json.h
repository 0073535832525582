/* json.h — the little JSON baton-worker needs: validate, quote, find object members, unescape. */
#ifndef BATON_JSON_H
#define BATON_JSON_H

#include "common.h"

/* True when s[0..n) is one JSON value (surrounding whitespace allowed) that
 * PostgreSQL's jsonb accepts: valid UTF-8, no \u0000, nesting at most 256. */
bool json_valid(const char *s, size_t n);
/* Appends s[0..n) as a JSON string literal; invalid UTF-8 and NUL become U+FFFD. */
void json_add_string(buf *b, const char *s, size_t n);
/* Finds key in the top-level object s[0..n) (which must be valid JSON); sets the
 * value's span (trimmed) and returns true when present. */
bool json_member(const char *s, size_t n, const char *key, const char **vs, size_t *vn);
/* The decoded text of a JSON string literal span (malloc'd), or NULL if it is not a string. */
char *json_string_value(const char *s, size_t n);
/* A malloc'd copy of s[0..n) that is valid UTF-8 without NUL bytes (U+FFFD replaces bad bytes). */
char *text_sanitize(const char *s, size_t n);
/* Appends one element to a PostgreSQL array literal under construction ("{" added by caller); NULL = SQL NULL. */
void pg_array_add(buf *b, const char *elem, bool first);

#endif

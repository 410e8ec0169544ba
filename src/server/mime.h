/*
 * Content-Type by file extension, from /etc/mime.types (Debian package media-types) with a
 * small built-in table for the web's common types.
 *
 * The table is built once at startup and is read-only afterwards, so every worker may look
 * types up at the same time without locks. A lookup hashes the extension (lowercased on the
 * fly, at most PT_MIME_EXT_MAX bytes) and probes an open-addressing table; it allocates
 * nothing and returns a pointer into the table, so the result is valid until pt_mime_free.
 *
 * Returned values are complete Content-Type field values: "; charset=utf-8" is already
 * appended for text/ *, application/javascript, application/json, application/xml,
 * image/svg+xml, and any type with a +json or +xml suffix (RFC 6839), because static text
 * on the web is overwhelmingly UTF-8 and a missing charset makes browsers guess.
 */
#ifndef PT_SERVER_MIME_H
#define PT_SERVER_MIME_H

#include <stddef.h>

#define PT_MIME_EXT_MAX   31 /* longer extensions are never found (unknown type) */
#define PT_MIME_TYPE_MAX 127 /* longer types in the file are skipped */
#define PT_MIME_DEFAULT_PATH "/etc/mime.types"
#define PT_MIME_DEFAULT_TYPE "application/octet-stream"

struct pt_mime;

/* Builds the table from the mime.types file at path (NULL: PT_MIME_DEFAULT_PATH; "": the
 * built-in table only). File format: "type ext ext ..." per line, '#' comments; for an
 * extension listed twice the first line wins; a type that is not a token "/" token is
 * skipped. Built-in entries fill in the extensions the file does not list (html, css, js,
 * mjs, json, svg, png, jpg, webp, avif, wasm, woff2, map, br, ...), so the result is the
 * same whether or not media-types is installed, for those.
 * Returns the table, which the caller owns (pt_mime_free), with *err = 0 when the file was
 * read, or -errno when it could not be (the built-in table is then used alone: log it as a
 * warning, not a failure). Returns NULL with *err = -ENOMEM only when memory runs out.
 * Thread: any (startup). */
struct pt_mime *pt_mime_load(const char *path, int *err);

/* Frees the table. NULL is allowed. */
void pt_mime_free(struct pt_mime *m);

/* The Content-Type value for the file name (or path) name[0..len): the extension is what
 * follows the last '.' of the last segment, compared case-insensitively. A name without an
 * extension, a dotfile such as ".bashrc", or an unknown extension gives
 * PT_MIME_DEFAULT_TYPE. The result is NUL-terminated and lives as long as m.
 * Pure lookup: no allocation, any thread, concurrently. */
const char *pt_mime_lookup(const struct pt_mime *m, const char *name, size_t len);

/* Number of extensions in the table (for a startup log line and tests). */
size_t pt_mime_count(const struct pt_mime *m);

#endif

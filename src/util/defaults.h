/*
 * Defaults written once, read by the HTTP layer (a zero in struct pt_http_config, the parser's
 * limits), the portico program's config table and its --help. Private to the sources (src/);
 * include/portico/http.h states the same numbers for its readers.
 */
#ifndef PT_UTIL_DEFAULTS_H
#define PT_UTIL_DEFAULTS_H

/* HTTP.SYS HTTP_TIMEOUT_LIMIT_INFO: HeaderWait, IdleConnection, EntityBody, DrainEntityBody and
 * RequestQueue are 120 s each; MinSendRate is 150 bytes/s. */
#define PT_DEFAULT_TIMEOUT_SEC    120
#define PT_DEFAULT_MIN_SEND_RATE  150
/* Request line + header fields (431), request-target (414), one field line or the trailer
 * section (431): nginx's large_client_header_buffers is 8k per line, Apache's LimitRequestLine
 * 8190, LimitRequestFieldSize 8190. */
#define PT_DEFAULT_MAX_HEAD_KIB   16
#define PT_DEFAULT_MAX_TARGET_KIB 8
#define PT_DEFAULT_MAX_FIELD_KIB  8
#define PT_DEFAULT_MAX_HEADERS    100   /* header fields per request (431), Apache's too */
#define PT_DEFAULT_QUEUE_LENGTH   1000  /* HTTP.SYS's request queue length */

#define PT_DEFAULT_TIMEOUT_MS  (PT_DEFAULT_TIMEOUT_SEC * 1000u)
#define PT_DEFAULT_MAX_HEAD    (PT_DEFAULT_MAX_HEAD_KIB * 1024u)
#define PT_DEFAULT_MAX_TARGET  (PT_DEFAULT_MAX_TARGET_KIB * 1024u)
#define PT_DEFAULT_MAX_FIELD   (PT_DEFAULT_MAX_FIELD_KIB * 1024u)

/* A default as a string literal for help text: PT_DEFAULT_STR(PT_DEFAULT_TIMEOUT_SEC) is
 * "120". */
#define PT_DEFAULT_STR(x)  PT_DEFAULT_STR_(x)
#define PT_DEFAULT_STR_(x) #x

#endif

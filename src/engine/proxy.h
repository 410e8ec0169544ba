/*
 * The PROXY protocol header parser (HAProxy's doc/proxy-protocol.txt, versions 1 and 2), shared
 * by src/engine/ (proxy_conn.c) and the parser's unit and fuzz tests. Pure: a function over
 * (buf, len), no allocation, no I/O, nothing read past buf[len - 1].
 *
 * Strict, as the specification asks of receivers (its section 2): nothing is processed before a
 * complete, valid header; any mismatch is an error, never "probably HTTP". Version 1 is one line
 * of at most 107 bytes ending in CRLF, "PROXY TCP4|TCP6 SRC DST SPORT DPORT" or "PROXY UNKNOWN
 * ...". Version 2 is a 16-byte binary header (signature, version/command, family, length) and
 * length bytes of addresses and TLVs; TLVs are walked (each must fit exactly) and skipped, a
 * CRC32C TLV is checked.
 */
#ifndef PT_ENGINE_PROXY_H
#define PT_ENGINE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#define PT_PROXY_HDR_MAX 4096u         /* a longer header is refused (nginx refuses the same) */
#define PT_PROXY_V1_MAX 107u           /* the longest version 1 line, CRLF included (spec 2.1) */
#define PT_PROXY_V2_SIG_LEN 12u
#define PT_PROXY_V2_FIXED 16u          /* signature, ver_cmd, fam, len */

struct pt_proxy_hdr {
	unsigned version;                  /* 1 or 2 */
	bool local;                        /* keep the connection's own endpoints: v2 LOCAL
	                                      (health checks), v1 UNKNOWN, v2 UNSPEC or UNIX */
	struct sockaddr_storage src, dst;  /* the client and the address it connected to, when
	                                      !local (AF_INET or AF_INET6, ports set) */
	socklen_t src_len, dst_len;
	unsigned ntlv;                     /* v2 TLVs seen (skipped) */
};

/* Parses the PROXY header at the start of buf[0..len). versions is a mask of PT_PROXY_V1 and
 * PT_PROXY_V2 (include/portico/engine.h): a header of another version is an error.
 * Returns the header's length (> 0; *h is filled), 0 when buf is a valid beginning of a header
 * that is not complete yet (read more and call again with everything), -EPROTO when it is
 * malformed (or of a version not in the mask), -EMSGSIZE when it is longer than
 * PT_PROXY_HDR_MAX. Pure; thread-safe. */
int pt__proxy_parse(const void *buf, size_t len, unsigned versions, struct pt_proxy_hdr *h);

/* CRC32C (Castagnoli) of buf, continuing from crc (0 to start). Pure. */
uint32_t pt__crc32c(uint32_t crc, const void *buf, size_t len);

#endif

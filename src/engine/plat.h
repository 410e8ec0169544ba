/*
 * The platform layer: the few operating-system calls the engine core (conn.c, engine.c,
 * listen.c, sendq.c, timer.c, post.c) makes outside its backend, behind one set of names.
 * Sockets and file descriptors stay ints in the core: on Windows a SOCKET is a kernel handle,
 * which the system guarantees fits in 32 bits (handles are shared with 32-bit processes), and
 * files are C runtime descriptors (_open), whose OS handle the IOCP backend looks up.
 *
 * Every function returns 0 or -errno (Windows errors mapped to the errno values the engine
 * documents: WSAEWOULDBLOCK -> -EAGAIN, WSAECONNRESET -> -ECONNRESET, ...), never sets errno
 * for the caller to read, and may be called from any thread.
 *
 * POSIX: static inline wrappers of exactly the calls the core made before this layer existed,
 * so the Linux build compiles to the same code. Windows: plat_win.h declares, plat_win.c
 * implements (Winsock 2).
 */
#ifndef PT_ENGINE_PLAT_H
#define PT_ENGINE_PLAT_H

#ifdef _WIN32
#include "engine/plat_win.h"
#else
#include "engine/plat_posix.h"
#endif

#endif

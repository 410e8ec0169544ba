/*
 * The choice of backend on Linux: io_uring where it works, else epoll (struct pt_backend).
 * Windows has one backend, IOCP, and its own chooser in iocp.c.
 */
#include "engine/engine_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Backend selection: config, then PORTICO_BACKEND, then probing. */
int pt__backend_choose(struct pt_engine *e)
{
	enum pt_backend_kind kind = e->cfg.backend;
	const char *env = getenv("PORTICO_BACKEND");
	char why[256] = "";

	if (kind == PT_BACKEND_AUTO && env && *env) {
		if (!strcmp(env, "uring") || !strcmp(env, "io_uring"))
			kind = PT_BACKEND_URING;
		else if (!strcmp(env, "epoll"))
			kind = PT_BACKEND_EPOLL;
		else if (strcmp(env, "auto")) {
			pt__log(e, 0, "PORTICO_BACKEND=%s: expected uring, epoll or auto", env);
			return -EINVAL;
		}
	}
	if (kind == PT_BACKEND_IOCP) {
		pt__log(e, 0, "the IOCP backend is the Windows one: use uring, epoll or auto here");
		return -ENOTSUP;
	}
	if (kind == PT_BACKEND_EPOLL) {
		e->be = &pt__epoll_backend;
		return 0;
	}
	int err = pt__uring_backend.probe(e, why, sizeof why);
	if (err == 0) {
		e->be = &pt__uring_backend;
		e->backend_auto = kind == PT_BACKEND_AUTO;
		return 0;
	}
	if (kind == PT_BACKEND_URING) {
		pt__log(e, 0, "io_uring backend unavailable: %s", why);
		return err;
	}
	pt__log(e, 2, "io_uring unavailable (%s); using the epoll backend", why);
	e->be = &pt__epoll_backend;
	return 0;
}

/* The probe passed but a worker's ring did not fit (memlock, often): epoll, when the backend
 * was chosen by probing. */
const struct pt_backend *pt__backend_fallback(struct pt_engine *e, int err)
{
	if (!e->backend_auto || (err != -ENOMEM && err != -EPERM && err != -EINVAL))
		return NULL;
	pt__log(e, 1, "io_uring workers failed (%s); falling back to the epoll backend",
		strerror(-err));
	return &pt__epoll_backend;
}

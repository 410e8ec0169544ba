/*
 * The portico program's fault points (test builds only). They are numbered from PT_FAULT_USER
 * and asked through the engine's one hook (pt_fault_sim, engine.h); what fails is decided by
 * whoever installed the hook (the test harness: tests/support/fault.c, PORTICO_FAULTS "open").
 * Without PT_TESTING pt_srv_fault is a constant 0 and nothing is linked.
 */
#ifndef PT_SERVER_FAULT_H
#define PT_SERVER_FAULT_H

#include <portico/engine.h>

enum pt_srv_fault_point {
	PT_SRV_FAULT_OPEN = PT_FAULT_USER, /* each file opened beneath a docroot (pt_path_open) */
};

/* 0: go ahead; else the negative errno the operation fails with. Any thread. */
static inline int pt_srv_fault(enum pt_srv_fault_point p)
{
#ifdef PT_TESTING
	return pt_fault_sim((int)p);
#else
	(void)p;
	return 0;
#endif
}

#endif

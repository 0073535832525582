/*
 * baton.c — module entry point of the baton extension and small session helpers.
 *
 * Glossary (used across the extension and the worker):
 *   queue        a named stream of work served by one kind of service
 *   task         one unit of work in a queue (payload in, result out)
 *   attempt      one execution of a task; the attempt number is part of the lease token
 *   lease        the right of one worker to run one attempt, until a deadline
 *   run          one execution of a workflow (a DAG of steps) with an input
 *   step         a node of a workflow; a task step runs as one or more tasks
 *   event        an immutable message published on a topic
 *   subscription a standing rule delivering matching events to a queue or workflow
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "baton.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Registers GUCs and, when preloaded, the scheduler background worker, the wake-up shared memory and the waiters' shared array. */
void
_PG_init(void)
{
	baton_wait_init();			/* defines its setting before bgworker.c reserves the prefix */
	baton_bgworker_init();
	baton_wakeup_init();
}

PG_FUNCTION_INFO_V1(baton_session_start);

/*
 * Returns the start time of the current backend.  Together with the backend
 * pid it identifies a session uniquely, so the tick can tell a dead claimer
 * from a recycled pid.
 */
Datum
baton_session_start(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(MyStartTimestamp);
}

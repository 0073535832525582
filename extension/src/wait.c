/*
 * wait.c — wakes sessions blocked in baton.wait_run / baton.wait_task when what they wait for ends.
 *
 * A waiting session publishes (kind, id) in its own slot of a small shared
 * array and sleeps on its process latch.  Row triggers on the run and task
 * tables note, in backend-local memory, every run or task that leaves its live
 * states; at commit (never on abort) the transaction callback sets the latch of
 * every waiter whose (kind, id) was noted, and the waiter re-reads the row.
 * The callback runs after the commit is visible to other sessions, and a waiter
 * publishes its slot before it reads the row, so no wake-up is lost: either the
 * waiter's read sees the end, or the committer's scan sees the waiter.
 *
 * Without shared_preload_libraries there is no shared array: a waiter sleeps on
 * its latch with a growing timeout (BATON_POLL_MIN_MS to BATON_POLL_MAX_MS) and
 * re-reads.  Both ways the sleep is interruptible, so pg_cancel_backend and
 * statement_timeout end a wait at once.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "baton.h"

/* Without a shared array, polling starts this fast and slows down to this. */
#define BATON_POLL_MIN_MS 5
#define BATON_POLL_MAX_MS 250

/* Ended ids noted per transaction before the callback wakes every waiter instead. */
#define BATON_MAX_NOTED 1024

/*
 * baton.wait_recheck: with the shared array a waiter still re-reads its row
 * this often (ms), a safety net for ends no note reaches (COMMIT PREPARED in
 * another session, a transaction that ended more than BATON_MAX_NOTED rows is
 * covered by waking everyone).
 */
static int	baton_wait_recheck = 1000;

/* What a slot waits for. */
typedef enum WaitKind
{
	WAIT_NONE = 0,
	WAIT_RUN = 1,
	WAIT_TASK = 2
} WaitKind;

/* One slot per backend (indexed by BackendId - 1); written only by its owner. */
typedef struct WaitSlot
{
	pg_atomic_uint32 kind;		/* WaitKind; WAIT_NONE when the backend is not waiting */
	pg_atomic_uint64 id;		/* the run or task id */
	Latch	   *latch;			/* the owner's process latch */
} WaitSlot;

typedef struct WaitShared
{
	pg_atomic_uint32 waiters;	/* slots not WAIT_NONE: lets committers skip the scan */
	int			nslots;
	WaitSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} WaitShared;

static WaitShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Backend-local: what this transaction ended, and this backend's slot. */
static WaitKind noted_kind[BATON_MAX_NOTED];
static int64 noted_id[BATON_MAX_NOTED];
static int	noted = 0;
static bool noted_overflow = false;
static bool callback_registered = false;
static WaitSlot *my_slot = NULL;
static int	poll_ms = BATON_POLL_MIN_MS;

static Size
wait_shmem_size(void)
{
	return add_size(offsetof(WaitShared, slots), mul_size(MaxBackends, sizeof(WaitSlot)));
}

static void
wait_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(wait_shmem_size());
}

static void
wait_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("baton waiters", wait_shmem_size(), &found);
	if (!found)
	{
		pg_atomic_init_u32(&shared->waiters, 0);
		shared->nslots = MaxBackends;
		for (int i = 0; i < MaxBackends; i++)
		{
			pg_atomic_init_u32(&shared->slots[i].kind, WAIT_NONE);
			pg_atomic_init_u64(&shared->slots[i].id, 0);
			shared->slots[i].latch = NULL;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init: the setting always, the shared array only when preloaded. */
void
baton_wait_init(void)
{
	DefineCustomIntVariable("baton.wait_recheck",
							"How often (ms) a woken-by-commit wait re-reads its row anyway.",
							"A safety net when baton is preloaded; without preloading waits poll from 5 to 250 ms.",
							&baton_wait_recheck, 1000, 10, 3600000, PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wait_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wait_shmem_startup;
}

/* Clears this backend's slot (idempotent). */
static void
slot_clear(void)
{
	if (my_slot == NULL)
		return;
	if (pg_atomic_exchange_u32(&my_slot->kind, WAIT_NONE) != WAIT_NONE)
		pg_atomic_fetch_sub_u32(&shared->waiters, 1);
	my_slot = NULL;
}

/* Wakes the waiters of what this transaction ended. */
static void
wake_noted(void)
{
	if (shared == NULL || pg_atomic_read_u32(&shared->waiters) == 0)
		return;
	for (int i = 0; i < shared->nslots; i++)
	{
		WaitSlot   *s = &shared->slots[i];
		uint32		kind = pg_atomic_read_u32(&s->kind);
		uint64		id;

		if (kind == WAIT_NONE)
			continue;
		id = pg_atomic_read_u64(&s->id);
		if (noted_overflow)
		{
			SetLatch(s->latch);
			continue;
		}
		for (int j = 0; j < noted; j++)
		{
			if (noted_kind[j] == kind && (uint64) noted_id[j] == id)
			{
				SetLatch(s->latch);
				break;
			}
		}
	}
}

/* At the end of every transaction: wake on commit, and forget both the notes and our slot. */
static void
wait_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			wake_noted();
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			noted = 0;
			noted_overflow = false;
			slot_clear();
			break;
		default:
			break;
	}
}

static void
ensure_callback(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(wait_xact_callback, NULL);
		callback_registered = true;
	}
}

PG_FUNCTION_INFO_V1(baton_wait_prepare);

/*
 * baton._wait_prepare(kind text, id bigint): publishes what this session is
 * about to wait for and resets its latch.  Call it BEFORE reading the row:
 * an end committed after this call sets the latch.
 */
Datum
baton_wait_prepare(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		id = PG_GETARG_INT64(1);
	WaitKind	k = strcmp(kind, "run") == 0 ? WAIT_RUN : strcmp(kind, "task") == 0 ? WAIT_TASK : WAIT_NONE;

	if (k == WAIT_NONE)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("baton._wait_prepare: kind must be run or task, not \"%s\"", kind)));
	ResetLatch(MyLatch);
	if (shared != NULL && MyBackendId != InvalidBackendId && MyBackendId <= shared->nslots)
	{
		ensure_callback();
		my_slot = &shared->slots[MyBackendId - 1];
		my_slot->latch = MyLatch;
		pg_atomic_write_u64(&my_slot->id, (uint64) id);
		if (pg_atomic_exchange_u32(&my_slot->kind, k) == WAIT_NONE)
			pg_atomic_fetch_add_u32(&shared->waiters, 1);
		/* the slot must be visible before this session reads the row */
		pg_memory_barrier();
	}
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(baton_wait_sleep);

/*
 * baton._wait_sleep(max_ms integer) RETURNS boolean: sleeps until the latch
 * is set, an interrupt arrives or max_ms pass.  Without the shared array the
 * sleep is also capped by a growing poll interval.  Returns true when woken by
 * the latch (a wake-up from a committing session, or any other latch use).
 */
Datum
baton_wait_sleep(PG_FUNCTION_ARGS)
{
	int			max_ms = PG_GETARG_INT32(0);
	long		ms = max_ms;
	int			rc;

	if (my_slot == NULL)
	{
		ms = Min(ms, poll_ms);
		poll_ms = Min(poll_ms * 2, BATON_POLL_MAX_MS);
	}
	else
		ms = Min(ms, baton_wait_recheck);
	if (ms < 0)
		ms = 0;
	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	CHECK_FOR_INTERRUPTS();
	PG_RETURN_BOOL((rc & WL_LATCH_SET) != 0);
}

PG_FUNCTION_INFO_V1(baton_wait_done);

/* baton._wait_done(): the wait is over; clears the slot and resets the poll interval. */
Datum
baton_wait_done(PG_FUNCTION_ARGS)
{
	slot_clear();
	poll_ms = BATON_POLL_MIN_MS;
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(baton_wait_ended);

/*
 * Row trigger on baton._runs (kind run) and baton._tasks (kind task), fired
 * when a row leaves its live states: notes the id for the commit callback.
 * The trigger's WHEN clause does the filtering; this only records.
 */
Datum
baton_wait_ended(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		id;
	WaitKind	k;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 1)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("baton._wait_ended: must be a row trigger with one argument (run or task)")));
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	if (shared == NULL)
		return PointerGetDatum(TRIGGER_FIRED_BEFORE(td->tg_event) ? row : NULL);
	k = strcmp(td->tg_trigger->tgargs[0], "run") == 0 ? WAIT_RUN : WAIT_TASK;
	desc = RelationGetDescr(td->tg_relation);
	id = SPI_getbinval(row, desc, SPI_fnumber(desc, "id"), &isnull);
	ensure_callback();
	if (noted < BATON_MAX_NOTED && !isnull)
	{
		noted_kind[noted] = k;
		noted_id[noted] = DatumGetInt64(id);
		noted++;
	}
	else
		noted_overflow = true;
	return PointerGetDatum(TRIGGER_FIRED_BEFORE(td->tg_event) ? row : NULL);
}

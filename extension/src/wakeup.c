/*
 * wakeup.c — wake-ups without the notify lock: baton._wake records touched queues at commit in shared memory and the scheduler worker sends the NOTIFYs.
 *
 * Why: a NOTIFY makes the committing transaction take PostgreSQL's global
 * notify lock from pre-commit to the end of its commit (WAL flush included),
 * which serialises every producer that enqueues one task per transaction.
 *
 * How, when baton is in shared_preload_libraries and a scheduler worker
 * serves the current database:
 *   1. baton._wake(queue) only remembers the queue in backend-local memory
 *      (at most BATON_WAKE_LOCAL names; more make the transaction "wake all").
 *   2. At XACT_EVENT_COMMIT — the transaction is durable and visible — the
 *      callback copies them into a bounded shared hash keyed by (database,
 *      queue) under one short LWLock, and sets the scheduler worker's latch.
 *      On abort the marks are dropped: a rolled-back enqueue wakes nobody.
 *   3. The scheduler worker (bgworker.c) takes every queue recorded for its
 *      database and sends one NOTIFY baton_tasks per queue in one small
 *      transaction: commits that arrive while it is busy, or within
 *      BATON_WAKE_COALESCE_US of its last round, are coalesced into its next
 *      round.
 *
 * Never losing a wake-up:
 *   - Without preload, or while no scheduler worker is attached for this
 *     database (baton.scheduler = off, a database not in baton.database, the
 *     worker not started yet or restarting), _wake sends the NOTIFY in the
 *     producer's transaction exactly as before.
 *   - A commit cannot fail after it happened, so the callback never raises:
 *     when the shared hash is full (BATON_WAKE_MAX entries, all databases) or
 *     a transaction touched too many queues, the database's "wake all" flag is
 *     set instead, and the worker notifies every queue of baton._queues.
 *   - Entries recorded while the worker is gone (it exited between _wake and
 *     the commit) stay in shared memory until the restarted worker sends them;
 *     the daemons' polling fallback (poll_interval) covers that gap.
 *   - PREPARE TRANSACTION after a deferred wake-up is refused, as PostgreSQL
 *     refuses it after NOTIFY: the commit would happen in another session.
 *   - A wake-up from a subtransaction that rolls back is still sent: a
 *     spurious wake-up costs one empty claim, a missing one a stalled task.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "baton.h"

/* The channel workers LISTEN on (docs/worker.md); the payload is the queue name. */
#define BATON_WAKE_CHANNEL "baton_tasks"

/* Longest queue name (baton._check_queue_name) plus its terminator. */
#define BATON_QUEUE_KEY 129

/* Queues one transaction remembers by name; more set "wake all". */
#define BATON_WAKE_LOCAL 32

/* Queue names waiting in shared memory, all databases together; more set "wake all". */
#define BATON_WAKE_MAX 4096

/* Databases with a scheduler worker attached at once (baton.database entries). */
#define BATON_WAKE_DATABASES 64

#define BATON_WAKE_TRANCHE "baton wakeup"

/*
 * Shortest time between two rounds of the worker, in microseconds.  The first
 * wake-up after a quiet spell is sent at once; under a stream of commits the
 * worker sends at most one round per interval, each coalescing every commit
 * since the last, instead of one small transaction per commit.
 */
#define BATON_WAKE_COALESCE_US 1000

/* One served database: its worker and whether everything must be woken. */
typedef struct WakeSlot
{
	Oid			db;				/* InvalidOid: free slot */
	int			procno;			/* the worker's PGPROC number, for its latch */
	pid_t		pid;			/* 0 while no worker is attached */
	bool		wake_all;		/* overflow: notify every queue of the database */
	bool		pending;		/* something is waiting for this database */
} WakeSlot;

typedef struct WakeShared
{
	LWLock	   *lock;			/* protects everything here and the hash */
	int			nentries;		/* entries in the hash */
	WakeSlot	slots[BATON_WAKE_DATABASES];
} WakeShared;

typedef struct WakeKey
{
	Oid			db;
	char		queue[BATON_QUEUE_KEY];
} WakeKey;

static WakeShared *wake_shared = NULL;
static WakeSlot *my_slot = NULL;	/* the worker's own slot, once attached */
static TimestampTz last_round = 0;	/* when the worker last sent a round */
static HTAB *wake_hash = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This transaction's touched queues (backend-local; reset at every transaction end). */
static char touched[BATON_WAKE_LOCAL][BATON_QUEUE_KEY];
static int	ntouched = 0;
static bool touched_all = false;

static Size
WakeShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(WakeShared)),
					hash_estimate_size(BATON_WAKE_MAX, sizeof(WakeKey)));
}

static void
WakeShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(WakeShmemSize());
	RequestNamedLWLockTranche(BATON_WAKE_TRANCHE, 1);
}

static void
WakeShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	wake_shared = ShmemInitStruct("baton wakeup", sizeof(WakeShared), &found);
	if (!found)
	{
		memset(wake_shared, 0, sizeof(WakeShared));
		wake_shared->lock = &(GetNamedLWLockTranche(BATON_WAKE_TRANCHE))->lock;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(WakeKey);
	info.entrysize = sizeof(WakeKey);
	/* init_size = max_size: every entry is allocated up front, so an insert never allocates. */
	wake_hash = ShmemInitHash("baton wakeup queues", BATON_WAKE_MAX, BATON_WAKE_MAX,
							  &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* The slot of a database, or NULL.  Caller holds the lock. */
static WakeSlot *
FindSlot(Oid db)
{
	for (int i = 0; i < BATON_WAKE_DATABASES; i++)
		if (wake_shared->slots[i].db == db)
			return &wake_shared->slots[i];
	return NULL;
}

/* Copies this transaction's touched queues to shared memory and wakes the worker.  Never raises. */
static void
RecordTouched(void)
{
	WakeSlot   *slot;
	Latch	   *latch = NULL;

	LWLockAcquire(wake_shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId);
	if (slot != NULL)
	{
		for (int i = 0; i < ntouched && !touched_all; i++)
		{
			WakeKey		key;
			bool		found;

			if (wake_shared->nentries >= BATON_WAKE_MAX)
			{
				touched_all = true;
				break;
			}
			memset(&key, 0, sizeof(key));
			key.db = MyDatabaseId;
			strlcpy(key.queue, touched[i], sizeof(key.queue));
			if (hash_search(wake_hash, &key, HASH_ENTER_NULL, &found) == NULL)
				touched_all = true;
			else if (!found)
				wake_shared->nentries++;
		}
		if (touched_all)
			slot->wake_all = true;
		slot->pending = true;
		if (slot->pid != 0)
			latch = &ProcGlobal->allProcs[slot->procno].procLatch;
	}
	LWLockRelease(wake_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
}

static void
WakeXactCallback(XactEvent event, void *arg)
{
	if (ntouched == 0 && !touched_all)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("baton: cannot PREPARE a transaction that made a task due"),
					 errdetail("Its wake-up is sent at commit by this session, as a NOTIFY would be.")));
			break;
		case XACT_EVENT_COMMIT:
			RecordTouched();
			ntouched = 0;
			touched_all = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			ntouched = 0;
			touched_all = false;
			break;
		default:
			break;
	}
}

/* Called from _PG_init when preloaded: shared memory and the commit callback. */
void
baton_wakeup_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = WakeShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = WakeShmemStartup;
	RegisterXactCallback(WakeXactCallback, NULL);
}

/* True when a scheduler worker is attached for the current database (so a wake-up can wait for commit). */
static bool
WorkerAttached(void)
{
	WakeSlot   *slot;
	bool		attached;

	if (wake_shared == NULL)
		return false;
	LWLockAcquire(wake_shared->lock, LW_SHARED);
	slot = FindSlot(MyDatabaseId);
	attached = slot != NULL && slot->pid != 0;
	LWLockRelease(wake_shared->lock);
	return attached;
}

PG_FUNCTION_INFO_V1(baton_wake);

/*
 * baton._wake(queue): defers the wake-up to the scheduler worker when one
 * serves this database, else NOTIFY baton_tasks in this transaction.
 */
Datum
baton_wake(PG_FUNCTION_ARGS)
{
	char	   *queue = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (ntouched > 0 || touched_all || WorkerAttached())
	{
		/* Already deferring in this transaction: keep doing so, the commit callback records it. */
		if (!touched_all)
		{
			bool		seen = false;

			for (int i = 0; i < ntouched && !seen; i++)
				seen = strcmp(touched[i], queue) == 0;
			if (!seen)
			{
				if (ntouched >= BATON_WAKE_LOCAL || strlen(queue) >= BATON_QUEUE_KEY)
					touched_all = true;
				else
					strlcpy(touched[ntouched++], queue, BATON_QUEUE_KEY);
			}
		}
		PG_RETURN_VOID();
	}
	/* As pg_notify() does: NOTIFY is not allowed on a standby. */
	PreventCommandDuringRecovery("NOTIFY");
	Async_Notify(BATON_WAKE_CHANNEL, queue);
	PG_RETURN_VOID();
}

/* Detaches the worker's slot when it exits: wake-ups then go back to NOTIFY. */
static void
DetachWorker(int code, Datum arg)
{
	WakeSlot   *slot;

	LWLockAcquire(wake_shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId);
	if (slot != NULL && slot->pid == MyProcPid)
		slot->pid = 0;
	LWLockRelease(wake_shared->lock);
}

/*
 * Called by the scheduler worker once connected: from now on, wake-ups of
 * this database are sent by it.  Pending ones of a previous worker are sent
 * at its first round.
 */
void
baton_wakeup_attach(void)
{
	WakeSlot   *slot;

	if (wake_shared == NULL)
		return;
	LWLockAcquire(wake_shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId);
	if (slot == NULL)
		slot = FindSlot(InvalidOid);
	if (slot != NULL)
	{
		slot->db = MyDatabaseId;
		slot->procno = MyProc->pgprocno;
		slot->pid = MyProcPid;
		slot->pending = true;	/* whatever an earlier worker left */
		my_slot = slot;
	}
	LWLockRelease(wake_shared->lock);
	if (slot == NULL)
		ereport(WARNING,
				(errmsg("baton scheduler: more than %d databases served; wake-ups of this one use NOTIFY in the producer's transaction",
						BATON_WAKE_DATABASES)));
	else
		before_shmem_exit(DetachWorker, (Datum) 0);
}

/*
 * Takes this database's pending queue names out of shared memory (into
 * CurrentMemoryContext).  Returns false when nothing is pending.
 */
static bool
TakePending(List **queues, bool *all)
{
	WakeSlot   *slot;
	HASH_SEQ_STATUS seq;
	WakeKey    *entry;
	bool		pending;

	*queues = NIL;
	*all = false;
	LWLockAcquire(wake_shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId);
	pending = slot != NULL && slot->pending;
	if (pending)
	{
		*all = slot->wake_all;
		slot->wake_all = false;
		slot->pending = false;
		hash_seq_init(&seq, wake_hash);
		while ((entry = hash_seq_search(&seq)) != NULL)
		{
			if (entry->db != MyDatabaseId)
				continue;
			if (!*all)
				*queues = lappend(*queues, pstrdup(entry->queue));
			/* Deleting the element just returned is allowed during a scan. */
			hash_search(wake_hash, entry, HASH_REMOVE, NULL);
			wake_shared->nentries--;
		}
	}
	LWLockRelease(wake_shared->lock);
	return pending;
}

/* Puts a failed round back: the next round wakes every queue. */
static void
RequeueAll(void)
{
	WakeSlot   *slot;

	LWLockAcquire(wake_shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId);
	if (slot != NULL)
	{
		slot->wake_all = true;
		slot->pending = true;
	}
	LWLockRelease(wake_shared->lock);
}

/*
 * Sends the pending wake-ups of this database: one NOTIFY baton_tasks per
 * queue, all in one transaction (one notify-lock acquisition for everything
 * committed since the last round).  Called by the scheduler worker whenever
 * its latch is set.  Returns the number of notifications sent; on error
 * (logged) the round is retried as "wake all" at the next call.
 */
int
baton_wakeup_send(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *taken;
	List	   *volatile queues;
	bool		all;
	volatile int sent = 0;

	if (wake_shared == NULL || my_slot == NULL)
		return 0;
	/* An unlocked peek is enough: a commit that sets it afterwards also sets our latch. */
	if (my_slot->pending)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now - last_round < BATON_WAKE_COALESCE_US && now >= last_round)
			pg_usleep(BATON_WAKE_COALESCE_US - (now - last_round));
	}
	if (!TakePending(&taken, &all))
		return 0;
	last_round = GetCurrentTimestamp();
	queues = taken;
	if (queues == NIL && !all)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		ListCell   *lc;

		/*
		 * No need to wait for this commit's WAL flush: a notification does
		 * not survive a crash anyway, and the wake-up's latency is what counts.
		 */
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		foreach(lc, queues)
		{
			Async_Notify(BATON_WAKE_CHANNEL, (const char *) lfirst(lc));
			sent++;
		}
		if (all)
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "baton scheduler: SPI_connect failed");
			/* No extension (yet): no queue to wake. */
			if (SPI_execute("SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
							" WHERE n.nspname = 'baton' AND c.relname = '_queues'", true, 1) == SPI_OK_SELECT
				&& SPI_processed == 1
				&& SPI_execute("SELECT name FROM baton._queues", true, 0) == SPI_OK_SELECT)
			{
				for (uint64 i = 0; i < SPI_processed; i++)
				{
					char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

					if (name != NULL)
					{
						Async_Notify(BATON_WAKE_CHANNEL, name);
						sent++;
					}
				}
			}
			SPI_finish();
			PopActiveSnapshot();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		RequeueAll();
		sent = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	list_free_deep(queues);
	return sent;
}

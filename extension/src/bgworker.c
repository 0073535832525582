/*
 * bgworker.c — the in-database scheduler: one background worker per served database runs baton.tick().
 *
 * When baton is in shared_preload_libraries, _PG_init registers one static
 * background worker (bgw_type "baton scheduler") for each database named in
 * baton.database.  Each worker calls baton.tick() every baton.tick_interval
 * milliseconds in its own transaction.  A failing tick is logged and retried
 * with exponential backoff; the worker itself keeps running.  Worker daemons
 * skip their own ticks while baton.scheduler_running() finds a backend_type
 * 'baton scheduler' for their database.  Static workers are restarted by the
 * postmaster after a crash, and there is never more than one per database.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "baton.h"

/* The bgw_type every scheduler worker registers with; worker daemons rely on it. */
#define BATON_SCHEDULER_TYPE "baton scheduler"

/* Longest pause between retries of a failing tick, in milliseconds. */
#define BATON_MAX_BACKOFF_MS 60000

/* Seconds the postmaster waits before restarting a worker that exited (e.g. its database is missing). */
#define BATON_RESTART_SECONDS 10

/* GUC values. */
static char *baton_database = NULL;
static int	baton_tick_interval = 1000;
static bool baton_scheduler = true;

PGDLLEXPORT void baton_scheduler_main(Datum arg);

/* Outcome of one tick attempt. */
typedef enum TickOutcome
{
	TICK_DONE,					/* baton.tick() ran and committed */
	TICK_NOT_INSTALLED,			/* the extension is not installed in the database yet */
	TICK_FAILED					/* baton.tick() raised an error (logged) */
} TickOutcome;

/*
 * Splits a copy of the baton.database list into names, or returns false.
 * Names keep their case (database names are not identifiers here).
 */
static bool
SplitDatabaseList(const char *value, List **names)
{
	char	   *raw = pstrdup(value);

	*names = NIL;
	if (!SplitGUCList(raw, ',', names))
		return false;
	return true;
}

/* GUC check hook for baton.database: a comma list of names shorter than NAMEDATALEN. */
static bool
CheckDatabaseList(char **newval, void **extra, GucSource source)
{
	List	   *names;
	ListCell   *lc;

	if (!SplitDatabaseList(*newval, &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);

		if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("Database name \"%s\" is empty or too long.", name);
			return false;
		}
	}
	return true;
}

/* Registers one static scheduler worker for a database. */
static void
RegisterSchedulerWorker(const char *dbname)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/*
	 * Only once recovery has finished: a hot standby runs no scheduler (tick()
	 * writes), and the postmaster starts it when the standby is promoted, with
	 * no restart (tests/integration/72_failover.t).
	 */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BATON_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "baton");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "baton_scheduler_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "baton scheduler for database %s", dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, BATON_SCHEDULER_TYPE);
	strlcpy(worker.bgw_extra, dbname, BGW_EXTRALEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/* Defines the baton.* GUCs and, when preloaded, registers one worker per database. */
void
baton_bgworker_init(void)
{
	List	   *names;
	List	   *seen = NIL;
	ListCell   *lc;

	/*
	 * baton.database and baton.scheduler are read once, when the postmaster
	 * preloads the library.  PostgreSQL only allows PGC_POSTMASTER variables
	 * then; a session loading baton later defines them as reload-level (where
	 * they do nothing) so a value in postgresql.conf is not reported as bogus.
	 */
	GucContext	startup = process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("baton.database",
							   "Databases the baton scheduler serves (comma-separated).",
							   "One background worker per database runs baton.tick(). Needs a restart.",
							   &baton_database, "postgres", startup, 0,
							   CheckDatabaseList, NULL, NULL);
	DefineCustomIntVariable("baton.tick_interval",
							"Pause between two baton.tick() calls of the scheduler.",
							NULL, &baton_tick_interval, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("baton.scheduler",
							 "Starts the baton scheduler background workers (when preloaded).",
							 "Off: worker daemons run baton.tick() themselves. Needs a restart.",
							 &baton_scheduler, true, startup, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("baton");
#else
	EmitWarningsOnPlaceholders("baton");
#endif

	if (!process_shared_preload_libraries_in_progress || !baton_scheduler)
		return;
	if (!SplitDatabaseList(baton_database, &names))
		return;					/* unreachable: the check hook rejected it */
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		ListCell   *s;
		bool		dup = false;

		/* Never two workers for one database. */
		foreach(s, seen)
			dup = dup || strcmp((char *) lfirst(s), name) == 0;
		if (dup)
			continue;
		seen = lappend(seen, name);
		RegisterSchedulerWorker(name);
	}
}

/*
 * Runs one baton.tick() in its own transaction.  Errors are caught, logged
 * and rolled back so the worker survives them; summary receives the tick's
 * result (or a short reason) for pg_stat_activity.
 */
static TickOutcome
RunTick(char *summary, size_t size)
{
	static bool reported_missing = false;
	MemoryContext cxt = CurrentMemoryContext;
	volatile TickOutcome outcome = TICK_DONE;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/* A cancel request (pg_cancel_backend) lands here and only aborts this tick. */
		CHECK_FOR_INTERRUPTS();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (!OidIsValid(get_extension_oid("baton", true)))
		{
			if (!reported_missing)
				ereport(LOG,
						(errmsg("baton scheduler: extension \"baton\" is not installed in database \"%s\"; waiting for CREATE EXTENSION baton",
								get_database_name(MyDatabaseId))));
			reported_missing = true;
			outcome = TICK_NOT_INSTALLED;
			strlcpy(summary, "waiting for CREATE EXTENSION baton", size);
		}
		else
		{
			reported_missing = false;
			pgstat_report_activity(STATE_RUNNING, "SELECT baton.tick()");
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "baton scheduler: SPI_connect failed");
			if (SPI_execute("SELECT baton.tick()::text", false, 1) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "baton scheduler: SELECT baton.tick() returned no row");
			{
				char	   *text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

				strlcpy(summary, text ? text : "", size);
			}
			SPI_finish();
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* Log it, roll back, and let the caller back off: the worker stays up. */
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		outcome = TICK_FAILED;
		strlcpy(summary, "failed (see the server log); backing off", size);
	}
	PG_END_TRY();
	pgstat_report_stat(false);
	return outcome;
}

/*
 * Entry point of a scheduler worker: connect to the database in bgw_extra,
 * then tick, wait, repeat until SIGTERM or postmaster death.
 */
void
baton_scheduler_main(Datum arg)
{
	char		dbname[NAMEDATALEN];
	uint64		ticks = 0;
	int			failures = 0;
	char		summary[512];
	char		activity[768];

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	ereport(LOG, (errmsg("baton scheduler started for database \"%s\"", dbname)));
	/* From now on this worker sends the database's wake-ups (wakeup.c); its latch says when. */
	baton_wakeup_attach();

	for (;;)
	{
		TickOutcome outcome;
		long		wait_ms;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		outcome = RunTick(summary, sizeof(summary));
		if (outcome == TICK_FAILED)
			failures = Min(failures + 1, 30);
		else
			failures = 0;
		if (outcome == TICK_DONE)
			ticks++;

		/* Back off exponentially while ticks fail: 2, 4, 8... intervals, at most a minute. */
		wait_ms = baton_tick_interval;
		if (failures > 0)
			wait_ms = (long) Max((int64) baton_tick_interval,
								 Min((int64) BATON_MAX_BACKOFF_MS,
									 (int64) baton_tick_interval << Min(failures, 12)));

		/* What operators (and tests) see in pg_stat_activity.query while the worker waits. */
		snprintf(activity, sizeof(activity), "baton scheduler: %llu ticks, interval %d ms, last: %s",
				 (unsigned long long) ticks, baton_tick_interval, summary);
		pgstat_report_activity(STATE_IDLE, activity);

		/*
		 * Wait for the next tick.  Committed wake-ups set the latch: send
		 * them at once (everything committed meanwhile goes in one round)
		 * and keep waiting until the tick is due; SIGHUP ticks at once.
		 */
		{
			TimestampTz next_tick = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

			for (;;)
			{
				long		left;

				(void) baton_wakeup_send();
				if (ConfigReloadPending)
					break;
				left = (long) TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_tick);
				if (left <= 0)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 left, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				/* SIGTERM (die) exits here, between ticks. */
				if (ProcDiePending)
					CHECK_FOR_INTERRUPTS();
			}
		}
	}
}

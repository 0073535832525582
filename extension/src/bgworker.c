/* bgworker.c — the in-database scheduler background worker (placeholder until issue 8 lands). */
#include "postgres.h"

#include "baton.h"

/* Registers the scheduler's GUCs and background worker; nothing yet. */
void
baton_bgworker_init(void)
{
}

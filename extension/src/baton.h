/* baton.h — declarations shared by the C files of the baton extension. */
#ifndef BATON_H
#define BATON_H

/* bgworker.c: GUCs and the scheduler background worker (no-op unless preloaded). */
extern void baton_bgworker_init(void);

#endif							/* BATON_H */

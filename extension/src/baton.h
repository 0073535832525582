/* baton.h — declarations shared by the C files of the baton extension. */
#ifndef BATON_H
#define BATON_H

/* bgworker.c: GUCs and the scheduler background worker (no-op unless preloaded). */
extern void baton_bgworker_init(void);

/* wait.c: wake-ups of baton.wait_run / wait_task (shared array only when preloaded). */
extern void baton_wait_init(void);

/* wakeup.c: wake-ups recorded at commit and sent by the scheduler worker (no-op unless preloaded). */
extern void baton_wakeup_init(void);
extern void baton_wakeup_attach(void);
extern int	baton_wakeup_send(void);

#endif							/* BATON_H */

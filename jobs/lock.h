/* lock.h — one run of a job at a time, safe under cron.
 *
 * The lock is a file holding {"pid", "host", "started"}, locked with flock(2) for as long as the run lives:
 * the kernel drops the flock when the process dies, however it dies, so a lock file left by a dead run is
 * simply taken over (and said so).  A run that finds the flock held gives up with LMB_LOCK_HELD and a message
 * naming the holder.  As a second line of defence where flock is not shared (some network filesystems), a
 * lock file naming a live `lmbatch` process on this host counts as held too.  Released: the file is removed.
 */
#ifndef LMB_LOCK_H
#define LMB_LOCK_H

#include <stddef.h>

#include "../engine/error.h"

typedef struct lmb_lock lmb_lock;

enum { LMB_LOCK_OK = 0, LMB_LOCK_HELD = 1 };

/* LMB_LOCK_OK (note, when not NULL, says whether a stale lock was taken over; "" if not), LMB_LOCK_HELD
 * (err says by whom), or -1 on error. */
int lmb_lock_acquire(const char *path, lmb_lock **out, char *note, size_t note_cap, lmb_error *err);
void lmb_lock_release(lmb_lock *l);

#endif

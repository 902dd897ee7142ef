/**
 * Time for durations and deadlines, which a step of the wall clock must not move: NTP setting the
 * time, a virtual machine resumed or migrated. Timed by `Date.now()`, a forward step of a minute
 * made every worker look silent (all lost, their subtasks failed) and every running subtask look
 * stalled; a backward step stopped failure detection until the clock caught up.
 *
 * `steadyNow()` reads the monotonic clock (`performance.now()`) from an origin taken once, at the
 * wall-clock time the process started: its values read as epoch milliseconds, but never jump. What
 * is shown to people (an event's time, a job's start, a worker's last heartbeat) is wall-clock time:
 * `wallTimeOf` turns a steady reading into it.
 */
const origin = Date.now() - performance.now();

/**
 * Milliseconds since the epoch as of the process's start, moved on by the monotonic clock only:
 * whole milliseconds, as `Date.now()` gives them, never smaller than a reading before.
 */
export function steadyNow(): number {
  return Math.floor(origin + performance.now());
}

/** The wall-clock time (epoch ms) of a `steadyNow()` reading. */
export function wallTimeOf(steady: number): number {
  return Date.now() - (steadyNow() - steady);
}

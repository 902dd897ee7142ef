/**
 * Exit statuses of the `tessera` command, as README ("CLI") and `tessera --help` give them. A
 * script tells by them whether to look at the job (1, 3), fix its command line (2), or try again
 * once the coordinator is back (4): a job it lost sight of may still be running.
 */
import { status } from '../../shared/grpc-status.js';

export const EXIT = {
  /** Done; a job the command waited for succeeded. */
  ok: 0,
  /** A job the command waited for failed or was cancelled; any error not named below. */
  failed: 1,
  /** Invalid arguments or input (usage, INVALID_ARGUMENT), an unknown job or output (NOT_FOUND). */
  usage: 2,
  /** A job the command waited for partially succeeded (some inputs failed). */
  partial: 3,
  /** The coordinator could not be reached, or was lost and did not come back in time. */
  unreachable: 4,
  /** Ctrl-C: a submission not yet accepted is withdrawn; an accepted job goes on. */
  interrupted: 130,
  /** submit, watch, download: the reader of standard output went away (as SIGPIPE ends a process). */
  pipeClosed: 141,
} as const;

/** The table printed after `tessera --help`: kept beside the values it describes. */
export const EXIT_HELP = `
Exit status:
  0    done; a job waited for (submit, watch, download) succeeded
  1    a job waited for failed or was cancelled; any other error (a limit, a refused download,
       a TLS or token mistake)
  2    invalid arguments or input (usage, INVALID_ARGUMENT; also a job waited for that failed
       with INVALID_ARGUMENT alone), an unknown job or output (NOT_FOUND), a setting of \`tessera coordinator\` or \`tessera worker\` that cannot work
  3    a job waited for partially succeeded (some inputs failed: see its errors)
  4    the coordinator could not be reached, or was lost and not back within 2 minutes (--reconnect-for)
       (UNAVAILABLE, or a deadline passed while still connecting): a job may still be running;
       \`tessera health\`: nothing answered
  130  Ctrl-C: before the job is accepted (its upload), the submission is withdrawn and no job is
       left; once it is, the job goes on without this client (also a download or the demo stopped)
  141  submit, watch, download: the reader of standard output went away (| head -1), as SIGPIPE
       ends a process; the job goes on (other commands end 0 then)
`;

/**
 * Whether `err` says that the coordinator could not be reached or was lost: UNAVAILABLE, or a
 * DEADLINE_EXCEEDED that grpc-js gave while the call still waited for a connection ("Waiting for
 * LB pick", "waiting for name resolution"), where nothing answered: not a slow coordinator.
 */
export function coordinatorUnreachable(err: unknown): boolean {
  const { code, details } = (err ?? {}) as { code?: unknown; details?: unknown };
  if (code === status.UNAVAILABLE) return true;
  return code === status.DEADLINE_EXCEEDED && typeof details === 'string' && /waiting for (lb pick|name resolution)/i.test(details);
}

/**
 * The exit status of a command that ended with `err` (not a usage error): see {@link EXIT}.
 * `tlsTrouble`: the connection failed over a TLS mistake, which trying again will not mend.
 */
export function exitCodeForError(err: unknown, tlsTrouble = false): number {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === status.INVALID_ARGUMENT || code === status.NOT_FOUND) return EXIT.usage;
  if (coordinatorUnreachable(err) && !tlsTrouble) return EXIT.unreachable;
  return EXIT.failed;
}

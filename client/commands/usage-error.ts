/** A command line that cannot run as given: the CLI prints its message alone and exits 2. */
export class UsageError extends Error {
  /** The input file the error is about, where there is one (`--json` prints it). */
  readonly input: string | undefined;

  constructor(message: string, input?: string) {
    super(message);
    this.input = input;
  }
}

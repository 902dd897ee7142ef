/** A command line that cannot run as given: the CLI prints its message alone and exits 2. */
export class UsageError extends Error {}

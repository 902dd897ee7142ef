/**
 * Values handed from one stage of a job's start to a later one in the same process (a submission
 * check's probe to the planner, a prefetch to the plan): kept in memory, taken once, and dropped
 * after a while when nothing takes them (a job cancelled before its plan), so that a record kept
 * until its retention ends does not hold them.
 */
export class HandOff<K extends object, V> {
  private readonly values = new WeakMap<K, V>();

  constructor(private readonly keptMs: number) {}

  give(key: K, value: V): void {
    this.values.set(key, value);
    setTimeout(() => {
      if (this.values.get(key) === value) this.values.delete(key);
    }, this.keptMs).unref();
  }

  /** The value given for `key`, once; undefined when none was, or it was taken or dropped. */
  take(key: K): V | undefined {
    const value = this.values.get(key);
    this.values.delete(key);
    return value;
  }
}

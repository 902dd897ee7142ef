/**
 * Every test file: a cluster process (coordinator, worker) that died of an error nothing caught
 * fails the test that stops its cluster, whatever the test asserted. A coordinator ended by a
 * promise rejected with no handler (a submission stopped while an MP4's check ran, review soak)
 * went unseen: the test's own job had been withdrawn, and nothing else was asked of the cluster.
 */
import { LocalCluster } from '../../client/local-cluster.js';

const stop = LocalCluster.prototype.stop;
LocalCluster.prototype.stop = async function stopAndCheck(this: LocalCluster): Promise<void> {
  await stop.call(this);
  if (this.crashes.length > 0) {
    throw new Error(`cluster process(es) died of an uncaught error:\n${this.crashes.map((c) => `--- ${c.name}\n${c.report}`).join('\n')}`);
  }
};

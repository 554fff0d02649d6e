import { Worker } from 'node:worker_threads';
import { REWARD_WORKER_CODE, type RuleWorker } from '../workers/engine/train/js-reward';

/** A reward rule's worker as a Node worker thread. */
export function spawnNodeRuleWorker(): RuleWorker {
  const worker = new Worker(REWARD_WORKER_CODE, { eval: true });
  // A rule that throws at the top level of the worker ends it; the pending request's time limit reports that.
  worker.on('error', () => {});
  return {
    post: (message) => worker.postMessage(message),
    onMessage: (handler) => worker.on('message', handler),
    terminate: () => void worker.terminate(),
  };
}

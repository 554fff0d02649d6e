import type { RewardSample, RewardSource } from './rewards';

/**
 * A reward rule written by the person: JavaScript that evaluates to a function
 * `(prompt, completion, reference) => number`, run in a worker of its own so a slow or endless rule cannot hang
 * training: each batch of completions has a time limit, past which the worker is ended and the run stops with a
 * message. The same code runs in a browser Web Worker and in a Node worker thread; each platform only spawns it.
 */
export const REWARD_WORKER_CODE = `
const nodePort = typeof require === 'function' ? require('node:worker_threads').parentPort : null;
const send = (message) => (nodePort ? nodePort.postMessage(message) : self.postMessage(message));
const listen = (handler) =>
  nodePort ? nodePort.on('message', handler) : self.addEventListener('message', (event) => handler(event.data));
let rule = null;
listen((message) => {
  try {
    if (message.type === 'load') {
      rule = (0, eval)(message.source);
      if (typeof rule !== 'function') {
        throw new Error('it must evaluate to a function (prompt, completion, reference) => number, not ' + typeof rule);
      }
      send({ type: 'loaded' });
      return;
    }
    const rewards = message.samples.map((s, i) => {
      const reward = rule(s.prompt, s.completion, s.reference);
      if (typeof reward !== 'number' || !Number.isFinite(reward)) {
        throw new Error('it returned ' + String(reward) + ' (a finite number is needed) for completion ' +
          JSON.stringify(s.completion.slice(0, 60)) + ' of prompt ' + JSON.stringify(s.prompt.slice(0, 60)));
      }
      return reward;
    });
    send({ type: 'rewards', rewards });
  } catch (error) {
    send({ type: 'error', message: error && error.message ? error.message : String(error) });
  }
});
`;

/** A worker running REWARD_WORKER_CODE, as each platform spawns it. */
export interface RuleWorker {
  post(message: unknown): void;
  onMessage(handler: (message: unknown) => void): void;
  terminate(): void;
}

type Reply = { type: 'loaded' } | { type: 'rewards'; rewards: number[] } | { type: 'error'; message: string };

/**
 * The rule in `source` (named `name` in messages) as a reward source. Loading it checks that it evaluates to a
 * function; each `score` call gets `timeLimitMs` for the whole batch.
 */
export async function jsRewardSource(
  name: string,
  source: string,
  spawn: () => RuleWorker,
  timeLimitMs = 10_000,
): Promise<RewardSource> {
  const worker = spawn();
  let pending: ((reply: Reply) => void) | null = null;
  worker.onMessage((message) => pending?.(message as Reply));
  const request = (message: unknown, what: string) =>
    new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending = null;
        worker.terminate();
        reject(new Error(`the reward rule ${name} took more than ${timeLimitMs / 1000} s ${what} (an endless loop?)`));
      }, timeLimitMs);
      pending = (reply) => {
        clearTimeout(timer);
        pending = null;
        if (reply.type === 'error') reject(new Error(`the reward rule ${name}: ${reply.message}`));
        else resolve(reply);
      };
      worker.post(message);
    });
  try {
    await request({ type: 'load', source }, 'to load');
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return {
    name,
    async score(samples: RewardSample[]) {
      const plain = samples.map(({ prompt, completion, reference }) => ({ prompt, completion, reference }));
      const reply = await request({ type: 'score', samples: plain }, `on ${samples.length} completions`);
      if (reply.type !== 'rewards') throw new Error(`the reward rule ${name} answered out of turn`);
      return reply.rewards;
    },
    destroy: () => worker.terminate(),
  };
}

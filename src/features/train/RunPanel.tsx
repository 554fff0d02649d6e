import * as Comlink from 'comlink';
import { useMemo } from 'react';
import { button, card, ErrorMessage } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { formatSeconds, plural } from '../../lib/format';
import { useTraining } from '../../stores/training';
import { MetricChart, type Series } from './MetricChart';

const UNIT_TEXT = { sequences: 'training sequence', pairs: 'training pair', prompts: 'training prompt' } as const;

const STATUS_TEXT = {
  idle: '',
  preparing: 'Reading and tokenizing the dataset…',
  running: 'Training',
  paused: 'Paused',
  finished: 'Finished',
  stopped: 'Stopped',
  failed: 'Failed',
} as const;

const ENDED = new Set(['finished', 'stopped', 'failed']);

/** The run as it goes: progress with an ETA, pause / resume / stop, and the live charts. */
export function RunPanel() {
  const t = useTraining();
  const steps = t.metrics.filter((m) => m.type === 'train');
  const last = steps.at(-1);
  const total = t.prepared?.totalSteps ?? 0;
  const done = last?.step ?? t.prepared?.step ?? 0;
  // The ETA from the recent pace: the last (up to) ten steps this page saw.
  const recent = t.stepTimes.slice(-11);
  const perStep = recent.length > 1 ? (recent[recent.length - 1] - recent[0]) / 1000 / (recent.length - 1) : null;
  const eta = perStep !== null && t.status === 'running' ? perStep * (total - done) : null;

  return (
    <div className={card} data-testid="run-panel">
      <div className="flex flex-wrap items-center gap-3">
        <strong data-testid="run-status">{STATUS_TEXT[t.status]}</strong>
        {t.prepared && (
          <span className="text-sm text-slate-600 dark:text-slate-300" data-testid="run-data">
            {t.prepared.method.toUpperCase()} run on {t.prepared.format} data:{' '}
            {plural(t.prepared.train, UNIT_TEXT[t.prepared.unit])}, {t.prepared.validation} for validation
            {t.prepared.dropped > 0 && `, ${t.prepared.dropped} cut before their answers and left out`}
            {t.prepared.skipped > 0 && `, ${plural(t.prepared.skipped, 'record')} skipped`}
          </span>
        )}
      </div>
      {total > 0 && (
        <div className="mt-2 text-sm">
          <progress className="w-full" value={done} max={total} aria-label="Training progress" />
          <span data-testid="run-progress">
            Step {done} of {total}
            {last && `, loss ${last.loss.toFixed(4)}`}
            {last?.reward !== undefined && `, reward ${last.reward.toFixed(3)}`}
            {last && `, ${Math.round(last.tokensPerSecond)} tokens/s`}
            {eta !== null && `, about ${formatSeconds(eta)} left`}
            {t.lastCheckpoint !== null && ` · checkpoint at step ${t.lastCheckpoint}`}
          </span>
        </div>
      )}
      {t.prepared && t.settings && t.settings.method !== t.prepared.method && ENDED.has(t.status) && (
        <p className="mt-1 text-sm text-slate-600 dark:text-slate-300" data-testid="run-previous">
          The last run’s figures: Start training below begins a new {t.settings.method.toUpperCase()} run.
        </p>
      )}
      <Controls />
      {t.message && <ErrorMessage error={t.message} />}
      {steps.length > 0 && <Charts />}
    </div>
  );
}

function Controls() {
  const t = useTraining();
  const resume = async () => {
    t.setStatus('running');
    try {
      await getEngine().resumeTraining(Comlink.proxy(t.handle));
    } catch (error) {
      t.fail((error as Error).message);
    }
  };
  return (
    <div className="mt-3 flex gap-2">
      {t.status === 'running' && (
        <button
          type="button"
          className={`${button} border border-slate-300`}
          onClick={() => getEngine().pauseTraining()}
        >
          Pause
        </button>
      )}
      {t.status === 'paused' && (
        <button type="button" className={`${button} bg-indigo-600 text-white`} onClick={resume}>
          Resume
        </button>
      )}
      {(t.status === 'running' || t.status === 'paused') && (
        <button
          type="button"
          className={`${button} border border-red-300 text-red-700`}
          onClick={async () => {
            await getEngine().stopTraining();
            if (t.status === 'paused') t.setStatus('stopped');
          }}
        >
          Stop
        </button>
      )}
    </div>
  );
}

function Charts() {
  const metrics = useTraining((s) => s.metrics);
  const charts = useMemo(() => {
    const train = metrics.filter((m) => m.type === 'train');
    const x = train.map((m) => m.step);
    const evals = metrics.flatMap((m) => (m.type === 'eval' ? [m] : []));
    const evalAt = new Map(evals.map((m) => [m.step, m.validationLoss]));
    const accuracyAt = new Map(evals.map((m) => [m.step, m.validationAccuracy]));
    const heldOutRewardAt = new Map(evals.map((m) => [m.step, m.validationReward]));
    const rl = train.some((m) => m.reward !== undefined);
    const line = (label: string, color: string, values: (number | null)[]): Series => ({ label, color, values });
    return {
      x,
      loss: [
        line(
          'training',
          '#4f46e5',
          train.map((m) => m.loss),
        ),
        line(
          'validation',
          '#d97706',
          x.map((s) => evalAt.get(s) ?? null),
        ),
      ],
      lr: [
        line(
          'learning rate',
          '#0891b2',
          train.map((m) => m.lr),
        ),
      ],
      norm: [
        line(
          'gradient norm',
          '#be123c',
          train.map((m) => m.gradNorm),
        ),
      ],
      // Preference methods: the share of held-out pairs the model ranks right.
      accuracy: evals.some((m) => m.validationAccuracy !== null)
        ? [
            line(
              'held-out pairs ranked right',
              '#7c3aed',
              x.map((s) => accuracyAt.get(s) ?? null),
            ),
          ]
        : null,
      // Policy optimization: the completions' mean reward, its spread within groups, and the drift from the base model.
      reward: rl
        ? [
            line(
              'mean reward',
              '#16a34a',
              train.map((m) => m.reward ?? null),
            ),
            line(
              'spread within groups',
              '#a3a3a3',
              train.map((m) => m.rewardStd ?? null),
            ),
            line(
              'held-out prompts',
              '#d97706',
              x.map((s) => heldOutRewardAt.get(s) ?? null),
            ),
          ]
        : null,
      kl: rl
        ? [
            line(
              'KL per token',
              '#9333ea',
              train.map((m) => m.kl ?? null),
            ),
          ]
        : null,
      speed: [
        line(
          'tokens/s',
          '#059669',
          train.map((m) => m.tokensPerSecond),
        ),
      ],
    };
  }, [metrics]);
  return (
    <div className="mt-4 grid gap-4 md:grid-cols-2">
      <MetricChart title="Loss" x={charts.x} series={charts.loss} />
      <MetricChart title="Learning rate" x={charts.x} series={charts.lr} />
      <MetricChart title="Gradient norm" x={charts.x} series={charts.norm} />
      <MetricChart title="Tokens per second" x={charts.x} series={charts.speed} />
      {charts.accuracy && (
        <MetricChart title="Validation accuracy" x={charts.x} series={charts.accuracy} range={[0, 1]} />
      )}
      {charts.reward && <MetricChart title="Reward" x={charts.x} series={charts.reward} />}
      {charts.kl && <MetricChart title="KL to the base model" x={charts.x} series={charts.kl} />}
    </div>
  );
}

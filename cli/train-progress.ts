import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetricRecord, StepMetrics } from '../core/training/metrics';
import type { EngineSession } from '../workers/engine/session';
import type { TrainEvent } from '../workers/engine/train/training-session';

/** What the run says as it goes: a progress line on stderr, every metric into DIR/metrics.jsonl. */
export class Progress {
  private outcome: TrainEvent | null = null;
  private lastValidation: Extract<MetricRecord, { type: 'eval' }> | null = null;
  private started = performance.now();
  private firstStep = 0;
  private written = Promise.resolve();
  private readonly metricsPath: string;

  constructor(private readonly out: string) {
    this.metricsPath = join(out, 'metrics.jsonl');
  }

  /** The session's events, printed; Ctrl-C pauses the run after its step, checkpointed. */
  listen(session: EngineSession): (e: TrainEvent) => void {
    const onInterrupt = () => {
      session.pauseTraining();
      log('\nstopping after this step (Ctrl-C again to quit at once)');
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', onInterrupt);
    return (event) => {
      if (event.type === 'prepared') {
        this.prepared(event, session);
      } else if (event.type === 'metric') {
        const { metric } = event;
        if (metric.type === 'train' && metric.step > this.firstStep) process.stderr.write(this.line(metric));
        if (metric.type === 'eval') this.lastValidation = metric;
        this.written = this.written.then(() => appendFile(this.metricsPath, `${JSON.stringify(metric)}\n`));
      } else if (event.type !== 'checkpoint') {
        process.off('SIGINT', onInterrupt);
        this.outcome = event;
      }
    };
  }

  private prepared(event: Extract<TrainEvent, { type: 'prepared' }>, session: EngineSession): void {
    const { skipped, unit } = event;
    log(
      `${event.format} data: ${event.records} records (${skipped} skipped${skipped > 0 ? '; see hone inspect' : ''}), ` +
        `${event.train} training and ${event.validation} validation ${unit}` +
        (event.dropped > 0 ? `; ${event.dropped} cut before their answers and left out` : ''),
    );
    log(
      event.step > 0
        ? `resuming at step ${event.step} of ${event.totalSteps}`
        : `training on ${session.adapterName}: ${event.totalSteps} steps, ${event.warmup} of them warming up`,
    );
    this.firstStep = event.step;
    this.started = performance.now();
    this.written = this.written.then(async () => {
      await mkdir(this.out, { recursive: true });
      await writeFile(this.metricsPath, '');
    });
  }

  /** One line, redrawn: where the run is, how fast, how long is left. */
  private line(m: StepMetrics): string {
    const width = 24;
    const done = Math.round((width * m.step) / m.totalSteps);
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = (elapsed / (m.step - this.firstStep)) * (m.totalSteps - m.step);
    return (
      `\rstep ${m.step}/${m.totalSteps} [${'#'.repeat(done)}${'.'.repeat(width - done)}] loss ${m.loss.toFixed(4)} ` +
      `lr ${m.lr.toExponential(1)} | ${Math.round(m.tokensPerSecond)} tok/s | ${duration(eta)} left   `
    );
  }

  /** The run's end: the adapter (or model) written into DIR when it finished; the exit code. */
  async finish(session: EngineSession): Promise<number> {
    const { out } = this;
    await this.written;
    process.stderr.write('\n');
    if (this.lastValidation) log(describeValidation(this.lastValidation));
    const outcome = this.outcome as Extract<TrainEvent, { step: number }> | null;
    if (outcome?.type === 'failed') throw new Error(`${outcome.message} (at step ${outcome.step})`);
    if (outcome?.type !== 'finished') {
      log(`stopped at step ${outcome?.step ?? 0}; continue with: hone train --out ${out} --resume`);
      return 130;
    }
    const { files } = await session.exports.runFiles('run');
    for (const [name, content] of files) {
      await writeFile(join(out, name), content instanceof Blob ? new Uint8Array(await content.arrayBuffer()) : content);
    }
    const what = files.has('adapter_config.json') ? 'the adapter' : 'the model';
    log(`wrote ${what}, metrics.jsonl and a checkpoint (continue with --resume --max-steps N) to ${out}`);
    return 0;
  }
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m ${Math.round(seconds % 60)}s` : `${Math.round(seconds)}s`;
}

function describeValidation(v: Extract<MetricRecord, { type: 'eval' }>): string {
  const parts = [
    v.validationLoss !== null && `validation loss ${v.validationLoss.toFixed(4)}`,
    v.validationAccuracy !== null && `${(100 * v.validationAccuracy).toFixed(1)}% of held-out pairs ranked right`,
    v.validationReward !== null && `mean reward on held-out prompts ${v.validationReward.toFixed(4)}`,
  ];
  return parts.filter(Boolean).join(', ');
}

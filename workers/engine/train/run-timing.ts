/**
 * How long a run will take, measured before it starts on this GPU: the trainer built exactly as the run builds it
 * (so preparing the data, DPO's reference pass and the step's shape are the run's own), two of its steps timed (the
 * first also compiles the kernels, so the second is the one that counts), then thrown away.
 */

import type { DatasetFile } from '../../../core/dataset/read-records';
import { buildRun, type Engine, type ModelOnGpu, type TrainRequest } from './build-run';

export interface RunTiming {
  /** Reading and tokenizing the data and the objective's work before the first step. */
  preparationSeconds: number;
  totalSteps: number;
  secondsPerStep: number;
  /** Every validation pass together (every `evalEvery` steps and at the end). */
  validationSeconds: number;
  totalSeconds: number;
}

/**
 * A validation batch's share of a training micro-batch's time: a forward without the backward is about a third of
 * the work, but policy optimization validates by generating and scoring completions, as its steps do.
 */
function validationShare(method: TrainRequest['settings']['method']): number {
  return method === 'grpo' ? 1 : 1 / 3;
}

export async function timeRun(
  engine: Engine,
  model: ModelOnGpu,
  request: TrainRequest,
  files: DatasetFile[],
): Promise<RunTiming> {
  const started = performance.now();
  const run = await buildRun(engine, model, request, files);
  const { prepared, trainer } = run;
  const preparationSeconds = (performance.now() - started) / 1000;
  try {
    await trainer.trainStep();
    const timed = performance.now();
    await trainer.trainStep();
    const secondsPerStep = (performance.now() - timed) / 1000;
    const { totalSteps } = trainer;
    const s = request.settings;
    const passes =
      prepared.data.validation.length === 0
        ? 0
        : 1 + (s.evalEvery > 0 ? Math.floor((totalSteps - 1) / s.evalEvery) : 0);
    const batchesPerPass = Math.ceil(prepared.data.validation.length / s.batchSize);
    const validationSeconds = (passes * batchesPerPass * secondsPerStep * validationShare(s.method)) / s.gradAccum;
    return {
      preparationSeconds,
      totalSteps,
      secondsPerStep,
      validationSeconds,
      totalSeconds: preparationSeconds + totalSteps * secondsPerStep + validationSeconds,
    };
  } finally {
    run.destroy();
  }
}

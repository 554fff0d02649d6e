/**
 * A trainer checkpoint as two files any storage can hold: `trainer.json` (settings, step, data position, optimizer
 * step count) and `optimizer.safetensors` (each parameter group's values and AdamW moments, F32). The CLI writes
 * them into a folder; the browser keeps the same bytes.
 */
import { parseSafetensors, serializeSafetensors, type WritableTensor } from '../../../core/safetensors';
import type { TrainerCheckpoint } from './trainer';

export const CHECKPOINT_FILES = ['trainer.json', 'optimizer.safetensors'] as const;

export function serializeCheckpoint(
  c: TrainerCheckpoint,
): Record<(typeof CHECKPOINT_FILES)[number], string | Uint8Array> {
  const tensors = new Map<string, WritableTensor>();
  c.optimizer.groups.forEach((g, i) => {
    for (const [part, data] of [
      ['param', g.param],
      ['m', g.m],
      ['v', g.v],
    ] as const) {
      tensors.set(`group.${i}.${part}`, { dtype: 'F32', shape: [data.length], data });
    }
  });
  const meta = {
    format: 'hone-trainer-checkpoint-1',
    settings: c.settings,
    step: c.step,
    position: c.position,
    optimizerSteps: c.optimizer.steps,
    groups: c.optimizer.groups.length,
  };
  return {
    'trainer.json': `${JSON.stringify(meta, null, 2)}\n`,
    'optimizer.safetensors': serializeSafetensors(tensors, { format: 'pt' }),
  };
}

export function parseCheckpoint(json: string, tensors: Uint8Array, source: string): TrainerCheckpoint {
  let meta: {
    format?: unknown;
    settings: TrainerCheckpoint['settings'];
    step: number;
    position: number;
    optimizerSteps: number;
    groups: number;
  };
  try {
    meta = JSON.parse(json);
  } catch (error) {
    throw new Error(`${source}/trainer.json: ${(error as Error).message}`);
  }
  if (meta.format !== 'hone-trainer-checkpoint-1')
    throw new Error(`${source}/trainer.json: not a Hone trainer checkpoint`);
  const file = parseSafetensors(tensors, `${source}/optimizer.safetensors`);
  const read = (key: string) => {
    if (!file.tensors.has(key)) throw new Error(`${source}/optimizer.safetensors: no tensor ${key}`);
    return Float32Array.from(file.readFloat32(key));
  };
  return {
    settings: meta.settings,
    step: meta.step,
    position: meta.position,
    optimizer: {
      steps: meta.optimizerSteps,
      groups: Array.from({ length: meta.groups }, (_, i) => ({
        param: read(`group.${i}.param`),
        m: read(`group.${i}.m`),
        v: read(`group.${i}.v`),
      })),
    },
  };
}

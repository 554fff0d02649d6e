import { writeFile } from 'node:fs/promises';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { type F32Tensor, serializeSafetensors } from '../../core/safetensors';
import { readConcatenated } from '../../workers/engine/gpu/buffers';
import { submitOps } from '../../workers/engine/gpu/ops';
import { EngineKernels, kernelChoicesFor } from '../../workers/engine/model/kernels';
import { GpuLora } from '../../workers/engine/model/lora';
import { TransformerStep } from '../../workers/engine/model/transformer';
import { uploadChecked } from '../../workers/engine/upload-weights';
import type { Command } from '../command';
import { readJsonFile } from '../folder';
import { modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';

/** A JSON [batch][seq] array of integers, all rows the same length; `what` names it in errors. */
export function parseTokenMatrix(json: unknown, what: string, allowIgnore: boolean): number[][] {
  if (!Array.isArray(json) || json.length === 0) throw new Error(`${what}: expected a non-empty array of arrays`);
  const seq = Array.isArray(json[0]) ? json[0].length : -1;
  json.forEach((row, b) => {
    if (!Array.isArray(row)) throw new Error(`${what}: row ${b} is not an array`);
    if (row.length !== seq || seq === 0) throw new Error(`${what}: row ${b} has ${row.length} ids, row 0 has ${seq}`);
    row.forEach((id, t) => {
      if (!Number.isInteger(id) || (id < 0 && !(allowIgnore && id === -100))) {
        throw new Error(
          `${what}: [${b}][${t}] = ${JSON.stringify(id)} is not a token id${allowIgnore ? ' or -100' : ''}`,
        );
      }
    });
  });
  return json as number[][];
}

/**
 * `hone grads`: one forward and backward pass of the WebGPU engine on a checkpoint, a batch and a PEFT adapter;
 * writes d(loss)/d(each adapter tensor) under the adapter file's keys, the loss, and with --full every base
 * weight's gradient under its checkpoint key. For comparing the engine with another implementation.
 */
export const grads: Command = {
  usage: 'hone grads --model M --tokens FILE (--adapter DIR | --full) --out FILE.safetensors [--labels FILE]',
  summary:
    "One forward and backward pass of the engine: the loss and every adapter tensor's gradient (with --full every " +
    "base weight's) as safetensors, for comparing the engine with another implementation.",
  flags: {
    model: { value: 'M', help: 'the model' },
    tokens: { value: 'FILE', help: 'a JSON [batch][seq] array of token ids' },
    labels: { value: 'FILE', help: 'the targets, the same shape; -100 carries no loss (default: the tokens)' },
    adapter: { value: 'DIR', help: 'the PEFT adapter whose gradients are written (dropout off)' },
    full: { help: "every base weight's gradient as well" },
    out: { value: 'FILE', help: 'the safetensors file written' },
  },
  run: ({ values }) => writeGradients(values as Record<string, string | undefined>, Boolean(values.full)),
};

async function writeGradients(values: Record<string, string | undefined>, full: boolean): Promise<number> {
  const { model, tokens: tokensPath, adapter: adapterDir, out } = values;
  if (!model || !tokensPath || !out || (!adapterDir && !full)) throw new Error(`usage: ${grads.usage}`);

  const source = modelSource(model);
  const checkpoint = await loadCheckpoint(source.read, source.label);
  const config = checkpoint.config;
  const adapterSource = adapterDir ? modelSource(adapterDir) : null;
  const adapter = adapterSource ? await loadAdapter(adapterSource.read, adapterSource.label, config) : null;
  const tokens = parseTokenMatrix(await readJsonFile(tokensPath), tokensPath, false);
  const labels = values.labels ? parseTokenMatrix(await readJsonFile(values.labels), values.labels, true) : undefined;
  const shape = { batch: tokens.length, seq: tokens[0].length };

  const { device, summary } = await acquireNodeGpu();
  try {
    const kernels = new EngineKernels(device, kernelChoicesFor(summary));
    const weights = await uploadChecked(device, checkpoint, { halfMatrices: false, what: `the weights of ${model}` });
    // Dropout off whatever lora_dropout says: the gradients must be deterministic to compare (PyTorch's eval mode).
    const lora = adapter ? GpuLora.fromAdapter(device, config, adapter) : null;
    const step = new TransformerStep(device, kernels, weights, lora, shape, { full });
    step.setBatch(tokens, labels);
    device.pushErrorScope('validation');
    submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps]);
    const error = await device.popErrorScope();
    if (error) throw new Error(`the GPU rejected the step: ${error.message}`);

    const result = new Map<string, F32Tensor>();
    if (lora && adapter) {
      const loraGrads = await lora.readGradients(device);
      for (const m of adapter.modules) {
        const g = loraGrads.get(`${m.layer}.${m.projection}`);
        if (!g) throw new Error(`no gradient for ${m.keyA}`);
        result.set(m.keyA, { dtype: 'F32', shape: m.shapeA, data: g.A });
        result.set(m.keyB, { dtype: 'F32', shape: m.shapeB, data: g.B });
      }
    }
    result.set('loss', { dtype: 'F32', shape: [1], data: Float32Array.of(await step.readLoss()) });
    for (const [key, buffers] of step.weightGrads ?? []) {
      const info = checkpoint.tensors.get(key);
      if (!info) continue;
      const data = await readConcatenated(
        device,
        buffers,
        info.shape.reduce((a, b) => a * b, 1),
      );
      result.set(key, { dtype: 'F32', shape: info.shape, data });
    }
    await writeFile(out, serializeSafetensors(result, { format: 'pt', producer: 'hone grads' }));
    process.stdout.write(
      `${JSON.stringify({ loss: result.get('loss')?.data[0], tensors: result.size, out, adapter: summary.description || summary.architecture })}\n`,
    );
    return 0;
  } finally {
    device.destroy();
  }
}

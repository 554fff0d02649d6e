/**
 * The float64 reference on Gemma 3 against transformers + PEFT themselves (tests/fixtures/gemma3-tiny, written by
 * scripts/gemma3-fixture.py in float64): a random tiny Gemma3ForCausalLM whose 10-token rows pass its sliding
 * window of 4, with local and global layers, random norm weights (x̂ · (1 + w)) and a LoRA on all seven projections.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../../cli/folder';
import { loadAdapter, loadCheckpoint } from '../../../core/checkpoint';
import type { ModelConfig } from '../../../core/model-config';
import { parseSafetensors } from '../../../core/safetensors';
import { referenceLora } from '../../../tests/helpers/reference-lora';
import type { ReferenceLora } from './model.cpu';
import { referenceBatchLogits, referenceForwardBackward } from './transformer.cpu';

const FIXTURE = 'tests/fixtures/gemma3-tiny';

let config: ModelConfig;
let weights: Map<string, Float64Array>;
let lora: ReferenceLora;
let batch: { tokens: number[][]; labels: number[][] };
/** transformers' float64 results by name: loss, logits, grad.<parameter>. */
const expected = new Map<string, Float64Array>();

/** max |a − b| / max |b| */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-300);
}

beforeAll(async () => {
  const read = folderReader(FIXTURE);
  const checkpoint = await loadCheckpoint(read, 'gemma3-tiny');
  config = checkpoint.config;
  weights = new Map();
  for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
  lora = referenceLora(await loadAdapter(folderReader(join(FIXTURE, 'adapter')), 'adapter', config));
  batch = JSON.parse(await readFile(join(FIXTURE, 'batch.json'), 'utf8'));
  const bytes = new Uint8Array(await readFile(join(FIXTURE, 'expected.safetensors')));
  const file = parseSafetensors(bytes, 'expected.safetensors');
  for (const [name, info] of file.tensors) {
    expect(info.dtype).toBe('F64');
    expected.set(name, new Float64Array(bytes.slice(info.byteOffset, info.byteOffset + info.byteLength).buffer));
  }
});

describe('the reference on Gemma 3, against transformers', () => {
  it('reads the config as transformers does: local and global layers, the window shorter than the rows', () => {
    expect(config.modelType).toBe('gemma3_text');
    expect(config.gemma).toMatchObject({ slidingWindow: 4, slidingLayers: [true, false, true], localRopeTheta: 10 });
    expect(config.ropeTheta).toBe(100);
    expect(batch.tokens[0].length).toBeGreaterThan(4);
  });

  it('gives the logits of every position', () => {
    const logits = referenceBatchLogits(config, weights, lora, batch.tokens);
    expect(relativeError(logits, expected.get('logits') as Float64Array)).toBeLessThan(1e-10);
  });

  it('gives the loss and every gradient: LoRA A and B, and with every weight trained, each base weight', () => {
    const result = referenceForwardBackward(config, weights, lora, batch.tokens, batch.labels, { full: true });
    expect(relativeError([result.loss], expected.get('loss') as Float64Array)).toBeLessThan(1e-12);
    let checked = 0;
    for (const [key, { A, B }] of result.loraGrads) {
      const [layer, projection] = key.split('.');
      const block = projection.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(projection);
      const prefix = `grad.model.layers.${layer}.${block ? 'mlp' : 'self_attn'}.${projection}`;
      expect(relativeError(A, expected.get(`${prefix}.lora_A.weight`) as Float64Array), `${key} A`).toBeLessThan(1e-10);
      expect(relativeError(B, expected.get(`${prefix}.lora_B.weight`) as Float64Array), `${key} B`).toBeLessThan(1e-10);
      checked++;
    }
    expect(checked).toBe(3 * 7);
    for (const [key, grad] of result.weightGrads) {
      const want = expected.get(`grad.${key}`);
      expect(want, key).toBeDefined();
      expect(relativeError(grad, want as Float64Array), key).toBeLessThan(1e-10);
    }
    // Every base weight transformers differentiates, the four norms a layer and q/k norms included.
    const base = [...expected.keys()].filter((k) => k.startsWith('grad.') && !k.includes('lora_'));
    expect(result.weightGrads.size).toBe(base.length);
  });
});

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint } from '../../core/checkpoint';
import { foldLora, mergedModelFiles } from '../../core/export/merge';
import { randomUniform } from '../../core/random';
import { randomLora, randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { loraScale, referenceForward } from '../../workers/engine/reference/transformer.cpu';
import { hone } from '../helpers/hone-cli';
import { roundToBf16, tempDir, writeAdapterFolder, writeModelFolder } from '../helpers/model-folder';

const config = tinyConfig({ modelType: 'qwen2', attentionBias: true });
const lora = randomLora(config, ['q_proj', 'v_proj', 'down_proj'], 3, 6, false, 4);
const tokens = [
  [1, 5, 9, 12, 30, 2, 7],
  [4, 4, 18, 22, 3, 11, 6],
];

let dir: string;
beforeAll(async () => {
  dir = await tempDir('hone-merge-');
});

async function weightsOf(folder: string): Promise<Map<string, Float64Array>> {
  const checkpoint = await loadCheckpoint(folderReader(folder), folder);
  const weights = new Map<string, Float64Array>();
  for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
  return weights;
}

describe('merging an adapter into the weights', () => {
  it('adds s · B · A to a matrix of awkward size', () => {
    const [out, inDim, r, scale] = [7, 13, 3, 1.5];
    const w = randomUniform(out * inDim, 1);
    const a = randomUniform(r * inDim, 2);
    const b = randomUniform(out * r, 3);
    const merged = Float32Array.from(w);
    foldLora(merged, a, b, r, scale);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inDim; i++) {
        let update = 0;
        for (let k = 0; k < r; k++) update += b[o * r + k] * a[k * inDim + i];
        expect(merged[o * inDim + i]).toBeCloseTo(w[o * inDim + i] + scale * update, 5);
      }
    }
  });

  it('hone merge writes a model whose plain forward is the adapted model (fp32), config and tokenizer kept', async () => {
    const base = randomWeights(config, 3);
    const model = await writeModelFolder(join(dir, 'base'), config, base);
    await writeFile(join(model, 'tokenizer.json'), '{"version":"1.0"}');
    const adapter = await writeAdapterFolder(join(dir, 'adapter'), lora, ['q_proj', 'v_proj', 'down_proj']);
    const out = join(dir, 'merged');
    const { code, stderr } = await hone('merge', '--model', model, '--adapter', adapter, '--out', out);
    expect(stderr).toContain('wrote the merged model (model.safetensors, config.json, tokenizer.json)');
    expect(code).toBe(0);
    const merged = await weightsOf(out);
    const tuned = referenceForward(config, base, lora, tokens);
    expect(Math.abs(referenceForward(config, merged, null, tokens) - tuned) / tuned).toBeLessThan(1e-5);
    expect(Math.abs(referenceForward(config, base, null, tokens) - tuned)).toBeGreaterThan(1e-3);
    // Only the adapted projections changed.
    expect(merged.get('model.layers.0.self_attn.k_proj.weight')).toEqual(
      base.get('model.layers.0.self_attn.k_proj.weight'),
    );
    expect(merged.get('model.layers.0.self_attn.q_proj.weight')).not.toEqual(
      base.get('model.layers.0.self_attn.q_proj.weight'),
    );
  });

  it('keeps a bf16 checkpoint bf16, and shards a model past the shard size with an index', async () => {
    const base = new Map([...randomWeights(config, 5)].map(([k, v]) => [k, roundToBf16(v)]));
    const folder = await writeModelFolder(join(dir, 'bf16'), config, base, 'BF16');
    const checkpoint = await loadCheckpoint(folderReader(folder), folder);
    const modules = new Map(
      [...lora.modules].map(([key, m]) => [key, { A: Float32Array.from(m.A), B: Float32Array.from(m.B) }]),
    );
    const files = await mergedModelFiles(
      checkpoint,
      folderReader(folder),
      { r: 3, scale: loraScale(lora), modules },
      { maxShardBytes: 4000 },
    );
    const names = [...files.keys()];
    const shards = names.filter((n) => n.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const out = join(dir, 'sharded');
    await mkdir(out);
    for (const [name, blob] of files) await writeFile(join(out, name), new Uint8Array(await blob.arrayBuffer()));
    const reread = await loadCheckpoint(folderReader(out), out);
    expect(new Set([...reread.tensors.values()].map((t) => t.dtype))).toEqual(new Set(['BF16']));
    expect(reread.tensors.size).toBe(checkpoint.tensors.size);
    const merged = await weightsOf(out);
    const tuned = referenceForward(config, base, lora, tokens);
    // bf16 rounding of the merged weights blurs the result, far less than leaving the adapter out would.
    const mergedGap = Math.abs(referenceForward(config, merged, null, tokens) - tuned);
    const baseGap = Math.abs(referenceForward(config, base, null, tokens) - tuned);
    expect(mergedGap).toBeLessThan(baseGap / 10);
  });
});

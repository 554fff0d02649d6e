import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { serializeModelConfig } from '../../core/model-config';
import { loraTensorKey } from '../../core/peft';
import { parseSafetensors } from '../../core/safetensors';
import { loadTokenizer } from '../../core/tokenizer';
import { randomLora, randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { referenceForwardBackward } from '../../workers/engine/reference/transformer.cpu';
import { maxRelativeError } from '../helpers/gpu';
import { hone, honeWithEnv } from '../helpers/hone-cli';
import { startHubServer } from '../helpers/hub-server';
import { roundToBf16, tempDir, writeAdapterFolder, writeModelFolder } from '../helpers/model-folder';

const config = tinyConfig({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false });
const targets = ['q_proj', 'v_proj', 'down_proj'] as const;
const tokens = [
  [3, 14, 15, 9, 26, 5, 35],
  [8, 9, 7, 9, 3, 2, 3],
];
const labels = tokens.map((row) => row.map((id, t) => (t < 2 ? -100 : id)));

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
  await writeFile(join(dir, 'tokens.json'), JSON.stringify(tokens));
  await writeFile(join(dir, 'labels.json'), JSON.stringify(labels));
});

async function readOut(path: string) {
  return parseSafetensors(new Uint8Array(await readFile(path)), path);
}

describe('hone grads', () => {
  it('writes the loss and each adapter tensor’s gradient under its own key, matching the reference', async () => {
    const weights = randomWeights(config, 11);
    const lora = randomLora(config, [...targets], 4, 8, false, 12);
    const model = await writeModelFolder(join(dir, 'model'), config, weights);
    const adapter = await writeAdapterFolder(join(dir, 'adapter'), lora, [...targets]);
    const out = join(dir, 'grads.safetensors');
    const args = ['--model', model, '--tokens', join(dir, 'tokens.json'), '--adapter', adapter, '--out', out];
    const result = await hone('grads', ...args, '--labels', join(dir, 'labels.json'));
    expect(result.code, result.stderr).toBe(0);

    const ref = referenceForwardBackward(config, weights, lora, tokens, labels);
    const file = await readOut(out);
    expect(Math.abs(file.readFloat32('loss')[0] - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(file.tensors.size).toBe(1 + 2 * lora.modules.size);
    for (const [key, g] of ref.loraGrads) {
      const [layer, projection] = key.split('.') as [string, (typeof targets)[number]];
      const keyA = loraTensorKey(Number(layer), projection, 'A');
      expect(file.tensors.get(keyA)?.shape).toEqual([4, g.A.length / 4]);
      expect(maxRelativeError(file.readFloat32(keyA), g.A), keyA).toBeLessThan(1e-4);
      expect(maxRelativeError(file.readFloat32(loraTensorKey(Number(layer), projection, 'B')), g.B)).toBeLessThan(1e-4);
    }
  });

  it('--full adds every base weight’s gradient, reading a bf16 checkpoint widened exactly', async () => {
    const weights = new Map([...randomWeights(config, 21)].map(([k, v]) => [k, roundToBf16(v)]));
    const lora = randomLora(config, [...targets], 2, 2, true, 22);
    const model = await writeModelFolder(join(dir, 'model-bf16'), config, weights, 'BF16');
    const adapter = await writeAdapterFolder(join(dir, 'adapter-rs'), lora, [...targets]);
    const out = join(dir, 'grads-full.safetensors');
    const result = await hone(
      'grads',
      ...['--model', model, '--tokens', join(dir, 'tokens.json'), '--adapter', adapter, '--out', out, '--full'],
    );
    expect(result.code).toBe(0);
    const ref = referenceForwardBackward(config, weights, lora, tokens, undefined, { full: true });
    const file = await readOut(out);
    expect(Math.abs(file.readFloat32('loss')[0] - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(ref.weightGrads.size).toBeGreaterThan(10);
    for (const [key, g] of ref.weightGrads) {
      expect(maxRelativeError(file.readFloat32(key), g), key).toBeLessThan(1e-4);
    }
  });

  describe('bad input is named, not crashed on', () => {
    let model: string;
    let adapter: string;
    beforeAll(async () => {
      const weights = randomWeights(config, 31);
      model = await writeModelFolder(join(dir, 'bad-model'), config, weights);
      adapter = await writeAdapterFolder(join(dir, 'bad-adapter'), randomLora(config, ['q_proj'], 2, 2, false, 1), [
        'q_proj',
      ]);
    });
    const grads = (m: string, a: string, tokensFile = join(dir, 'tokens.json')) =>
      hone('grads', '--model', m, '--tokens', tokensFile, '--adapter', a, '--out', join(dir, 'x.safetensors'));

    it('an unknown architecture names model_type', async () => {
      const other = join(dir, 'gpt2');
      await writeModelFolder(other, config, randomWeights(config, 1));
      const json = JSON.parse(serializeModelConfig(config));
      await writeFile(join(other, 'config.json'), JSON.stringify({ ...json, model_type: 'gpt2' }));
      const { code, stderr } = await grads(other, adapter);
      expect(code).toBe(1);
      expect(stderr).toMatch(/model_type.*gpt2.*not supported/);
    });

    it('a missing tensor and a wrong shape name the tensor', async () => {
      const weights = randomWeights(config, 2);
      weights.delete('model.layers.1.mlp.up_proj.weight');
      const missing = await writeModelFolder(join(dir, 'missing'), config, weights);
      expect((await grads(missing, adapter)).stderr).toContain('model.layers.1.mlp.up_proj.weight');

      const wide = tinyConfig({ ...config, intermediateSize: config.intermediateSize + 2 });
      const mismatched = await writeModelFolder(join(dir, 'mismatch'), wide, randomWeights(wide, 3));
      await writeFile(join(mismatched, 'config.json'), serializeModelConfig(config));
      const { code, stderr } = await grads(mismatched, adapter);
      expect(code).toBe(1);
      expect(stderr).toMatch(/model\.layers\.0\.mlp\.\w+_proj\.weight has shape/);
    });

    it('an adapter for a different model names the tensor and says so', async () => {
      const bigger = tinyConfig({ ...config, hiddenSize: 32 });
      const foreign = await writeAdapterFolder(join(dir, 'foreign'), randomLora(bigger, ['q_proj'], 2, 2, false, 4), [
        'q_proj',
      ]);
      const { code, stderr } = await grads(model, foreign);
      expect(code).toBe(1);
      expect(stderr).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
      expect(stderr).toContain('different model');
    });

    it('a ragged token file and an out-of-vocabulary id name the file and the position', async () => {
      const ragged = join(dir, 'ragged.json');
      await writeFile(
        ragged,
        JSON.stringify([
          [1, 2, 3],
          [4, 5],
        ]),
      );
      expect((await grads(model, adapter, ragged)).stderr).toMatch(/ragged\.json: row 1 has 2 ids/);
      const outside = join(dir, 'outside.json');
      await writeFile(outside, JSON.stringify([[1, 2, config.vocabSize]]));
      expect((await grads(model, adapter, outside)).stderr).toMatch(/token 37 at \[0\]\[2\] is outside the vocabulary/);
    });
  });
});

describe('hone grads on Gemma 3, against transformers + PEFT', () => {
  it("gives transformers' float64 loss and every gradient on its own tiny Gemma3ForCausalLM and PEFT's adapter", async () => {
    // tests/fixtures/gemma3-tiny: written by scripts/gemma3-fixture.py (rows of 10 tokens, a sliding window of 4).
    const fixture = 'tests/fixtures/gemma3-tiny';
    const batch = JSON.parse(await readFile(join(fixture, 'batch.json'), 'utf8'));
    await writeFile(join(dir, 'gemma-tokens.json'), JSON.stringify(batch.tokens));
    await writeFile(join(dir, 'gemma-labels.json'), JSON.stringify(batch.labels));
    const out = join(dir, 'gemma-grads.safetensors');
    const args = ['--model', fixture, '--adapter', join(fixture, 'adapter'), '--full', '--out', out];
    const inputs = ['--tokens', join(dir, 'gemma-tokens.json'), '--labels', join(dir, 'gemma-labels.json')];
    const result = await hone('grads', ...args, ...inputs);
    expect(result.code, result.stderr).toBe(0);
    const bytes = new Uint8Array(await readFile(join(fixture, 'expected.safetensors')));
    const expected = parseSafetensors(bytes, 'expected.safetensors');
    const float64 = (name: string) => {
      const info = expected.tensors.get(name);
      if (!info) throw new Error(`expected.safetensors has no ${name}`);
      return new Float64Array(bytes.slice(info.byteOffset, info.byteOffset + info.byteLength).buffer);
    };
    const file = await readOut(out);
    expect(Math.abs(file.readFloat32('loss')[0] / float64('loss')[0] - 1)).toBeLessThan(1e-5);
    let compared = 0;
    for (const key of file.tensors.keys()) {
      if (key === 'loss') continue;
      const name = `grad.${key.replace(/^base_model\.model\./, '')}`;
      expect(maxRelativeError(file.readFloat32(key), float64(name)), key).toBeLessThan(2e-4);
      compared++;
    }
    // Every LoRA matrix (3 layers × 7 projections × A, B) and every base weight transformers differentiates.
    const base = [...expected.tensors.keys()].filter((k) => k.startsWith('grad.') && !k.includes('lora_'));
    expect(compared).toBe(42 + base.length);
  });
});

describe('hone with hub:ORG/NAME', () => {
  it('downloads the model once into the cache, then loads it from there; cache list and clear', async () => {
    const hub = await startHubServer();
    try {
      const weights = randomWeights(config, 41);
      const model = await writeModelFolder(join(dir, 'hub-model'), config, weights);
      const adapter = await writeAdapterFolder(
        join(dir, 'hub-adapter'),
        randomLora(config, ['v_proj'], 2, 4, false, 42),
        ['v_proj'],
      );
      const files = new Map<string, Uint8Array>();
      for (const name of ['config.json', 'model.safetensors'])
        files.set(name, new Uint8Array(await readFile(join(model, name))));
      hub.files.set('org/tiny', files);
      const env = { HONE_HUB_URL: hub.url, HONE_CACHE_DIR: join(dir, 'cache') };
      const args = ['--model', 'hub:org/tiny', '--tokens', join(dir, 'tokens.json'), '--adapter', adapter];
      const first = await honeWithEnv(env, 'grads', ...args, '--out', join(dir, 'hub1.safetensors'));
      expect(first.code).toBe(0);
      expect(first.stderr).toMatch(/model\.safetensors: [\d.]+ \/ [\d.]+ MB/);
      const downloads = () => hub.requests.filter((r) => r.path.endsWith('model.safetensors')).length;
      expect(downloads()).toBe(1);

      const second = await honeWithEnv(env, 'grads', ...args, '--out', join(dir, 'hub2.safetensors'));
      expect(second.code).toBe(0);
      expect(downloads()).toBe(1);
      const [a, b] = await Promise.all(['hub1', 'hub2'].map((f) => readOut(join(dir, `${f}.safetensors`))));
      expect(b.readFloat32('loss')).toEqual(a.readFloat32('loss'));

      const list = await honeWithEnv(env, 'cache', 'list');
      expect(list.stdout).toMatch(/org\/tiny\/main\/model\.safetensors/);
      await honeWithEnv(env, 'cache', 'clear');
      expect((await honeWithEnv(env, 'cache', 'list')).stdout).toMatch(/^0 files/m);

      const missing = await honeWithEnv(
        env,
        'grads',
        '--model',
        'hub:org/absent',
        ...args.slice(2),
        '--out',
        join(dir, 'x'),
      );
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('no repo org/absent on the Hub: check the id');
    } finally {
      await hub.close();
    }
  });
});

describe('hone with the bundled model', () => {
  it('names hone-tiny as --model and runs it, its loss on its own corpus well under uniform guessing', async () => {
    const tokenizer = await loadTokenizer(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const ids = tokenizer.encode('Call me Ishmael. Some years ago, never mind how long precisely, having little money');
    const tokensFile = join(dir, 'tiny-tokens.json');
    await writeFile(tokensFile, JSON.stringify([ids]));
    const out = join(dir, 'tiny.safetensors');
    const result = await hone('grads', '--model', 'hone-tiny', '--tokens', tokensFile, '--full', '--out', out);
    expect(result.code, result.stderr).toBe(0);
    const loss = (await readOut(out)).readFloat32('loss')[0];
    expect(loss).toBeLessThan(Math.log(4096) - 1);
  });
});

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../core/checkpoint';
import { adapterFolderFiles, zipAdapterFolder } from '../../core/export/adapter-folder';
import { baseModelId, exportName } from '../../core/export/base-model-id';
import { expandZip, unzipFolder } from '../../core/export/unzip-folder';
import { PROJECTIONS, projectionShape } from '../../core/model-config';
import { matchAdapterToModel, parseAdapterConfig } from '../../core/peft';
import { parseSafetensors } from '../../core/safetensors';
import type { MetricRecord } from '../../core/training/metrics';
import { defaultSettings } from '../../core/training/settings';
import { EngineKernels } from '../../workers/engine/model/kernels';
import type { GpuLora } from '../../workers/engine/model/lora';
import { filesReader } from '../../workers/engine/model-loader';
import { randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { referenceForward } from '../../workers/engine/reference/transformer.cpu';
import { runTraining, Trainer } from '../../workers/engine/train/trainer';
import { setupTestGpu } from '../helpers/gpu';
import { uploadWeights } from '../helpers/gpu-model';
import { hone } from '../helpers/hone-cli';
import { tempDir, writeModelFolder } from '../helpers/model-folder';
import { referenceLora } from '../helpers/reference-lora';
import { tinyRunSettings } from '../helpers/trainer-runs';

const step = (n: number, loss: number) => ({
  type: 'train' as const,
  step: n,
  totalSteps: 2,
  epoch: n / 2,
  loss,
  lr: 0.01,
  gradNorm: 1,
  tokensPerSecond: 100,
});
const metrics: MetricRecord[] = [
  step(1, 2.5),
  step(2, 2.1),
  { type: 'eval', step: 2, validationLoss: 2.3, validationAccuracy: null, validationReward: null },
];

function modulesFor(config: ReturnType<typeof tinyConfig>, r: number) {
  const modules = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const projection of PROJECTIONS) {
      const [out, inner] = projectionShape(config, projection);
      const A = Float32Array.from({ length: r * inner }, (_, i) => Math.sin(layer + i));
      const B = Float32Array.from({ length: out * r }, (_, i) => Math.cos(layer - i));
      modules.set(`${layer}.${projection}`, { A, B });
    }
  }
  return modules;
}

describe('an exported adapter', () => {
  for (const [arch, config] of [
    ['llama', tinyConfig()],
    ['qwen2', tinyConfig({ modelType: 'qwen2', attentionBias: true })],
    ['qwen3', tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8 })],
  ] as const) {
    it(`reads back as the same tensors, under PEFT's names and shapes (${arch})`, async () => {
      const settings = { ...defaultSettings('sft', 1000), loraR: 3 };
      const modules = modulesFor(config, 3);
      const zip = await zipAdapterFolder({
        name: 'tiny-sft-step2',
        baseModel: 'hone/tiny',
        settings,
        modules,
        data: { files: ['chat.jsonl'], format: 'messages', train: 4, validation: 1, unit: 'sequences' },
        metrics,
      });
      const files = unzipSync(new Uint8Array(await zip.arrayBuffer()));
      expect(Object.keys(files).sort()).toEqual(
        ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl'].map(
          (f) => `tiny-sft-step2/${f}`,
        ),
      );
      const json = JSON.parse(new TextDecoder().decode(files['tiny-sft-step2/adapter_config.json']));
      expect(json).toMatchObject({
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: 3,
        lora_alpha: settings.loraAlpha,
        target_modules: [...PROJECTIONS],
        base_model_name_or_path: 'hone/tiny',
        bias: 'none',
      });
      const tensors = parseSafetensors(files['tiny-sft-step2/adapter_model.safetensors'], 'adapter_model.safetensors');
      const matched = matchAdapterToModel(config, parseAdapterConfig(json), tensors.tensors);
      expect(matched.modules).toHaveLength(config.numLayers * PROJECTIONS.length);
      expect(tensors.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([
        3,
        config.hiddenSize,
      ]);
      const [out] = projectionShape(config, 'down_proj');
      expect(tensors.tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')?.shape).toEqual([
        out,
        3,
      ]);
      for (const m of matched.modules) {
        const original = modules.get(`${m.layer}.${m.projection}`);
        expect(tensors.readFloat32(m.keyA)).toEqual(original?.A);
        expect(tensors.readFloat32(m.keyB)).toEqual(original?.B);
      }
      const lines = new TextDecoder().decode(files['tiny-sft-step2/metrics.jsonl']).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l))).toEqual(metrics);
    });
  }

  it('carries a model card with the base model, the data, the settings, the results and how to load it', () => {
    const files = adapterFolderFiles({
      baseModel: 'HuggingFaceTB/SmolLM2-135M',
      settings: { ...defaultSettings('dpo', 135e6), loraR: 8 },
      modules: new Map(),
      data: { files: ['prefs.jsonl'], format: 'preference', train: 90, validation: 10, unit: 'pairs' },
      metrics,
    });
    const card = new TextDecoder().decode(files['README.md']);
    expect(card).toMatch(/^---\nbase_model: HuggingFaceTB\/SmolLM2-135M\nlibrary_name: peft\n/);
    expect(card).toContain('prefs.jsonl: preference data, 90 training and 10 validation pairs.');
    expect(card).toContain('| LoRA rank | 8 |');
    expect(card).toContain('| DPO beta | 0.1 |');
    expect(card).toContain('After 2 steps: training loss 2.1000, validation loss 2.3000.');
    expect(card).toContain('PeftModel.from_pretrained(base, "path/to/this/folder")');
    expect(card).toContain('AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M")');
    expect(card).not.toContain('## Evaluation');
  });

  it("carries the run's evaluation in its card: a metric per row, each model's mean and interval", () => {
    const files = adapterFolderFiles({
      baseModel: 'hone-tiny',
      settings: defaultSettings('sft', 1e6),
      modules: new Map(),
      data: null,
      metrics,
      evaluation: {
        examples: 6,
        contestants: ['base', 'tuned'],
        metrics: [
          {
            name: 'exactMatch',
            scores: [
              { mean: 0, low: 0, high: 0 },
              { mean: 0.8333333, low: 0.5, high: 1 },
            ],
          },
          {
            name: 'chrF',
            scores: [
              { mean: 5.25, low: 3.125, high: 7.5 },
              { mean: 91.5, low: 80, high: 100 },
            ],
          },
        ],
      },
    });
    const card = new TextDecoder().decode(files['README.md']);
    expect(card).toContain('## Evaluation\n\nScored with Hone on 6 examples');
    expect(card).toContain(
      '| metric | base | tuned |\n|---|---|---|\n| exactMatch | 0.000 [0.000, 0.000] | 0.833 [0.500, 1.000] |',
    );
    expect(card).toContain('| chrF | 5.250 [3.125, 7.500] | 91.500 [80.000, 100.000] |');
  });

  it('of a reward model is SEQ_CLS with its score head, and its card loads it for sequence classification', () => {
    const config = tinyConfig();
    const head = Float32Array.from({ length: config.hiddenSize }, (_, i) => i);
    const files = adapterFolderFiles({
      baseModel: 'hone/tiny',
      settings: { ...defaultSettings('rm', 1000), loraR: 3 },
      modules: modulesFor(config, 3),
      scoreHead: head,
      data: null,
      metrics: [],
    });
    const json = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(json).toMatchObject({ task_type: 'SEQ_CLS', modules_to_save: ['classifier', 'score'] });
    const tensors = parseSafetensors(files['adapter_model.safetensors'], 'adapter_model.safetensors');
    expect(matchAdapterToModel(config, parseAdapterConfig(json), tensors.tensors).scoreKey).toBe(
      'base_model.model.score.weight',
    );
    expect(tensors.readFloat32('base_model.model.score.weight')).toEqual(head);
    expect(new TextDecoder().decode(files['README.md'])).toContain('AutoModelForSequenceClassification');
  });
});

describe('baseModelId', () => {
  it('names the base model by its Hub id or its folder, never a local path', () => {
    expect(baseModelId('hub:HuggingFaceTB/SmolLM2-135M@main')).toBe('HuggingFaceTB/SmolLM2-135M');
    expect(baseModelId('hub:Qwen/Qwen3-0.6B')).toBe('Qwen/Qwen3-0.6B');
    expect(baseModelId('/home/me/models/my-llama/')).toBe('my-llama');
    expect(baseModelId('public/models/hone-tiny')).toBe('hone-tiny');
    expect(baseModelId('hone-tiny')).toBe('hone-tiny');
    expect(exportName('hub:HuggingFaceTB/SmolLM2-135M@main', 'sft', 'step200')).toBe('SmolLM2-135M-sft-step200');
  });
});

describe('an adapter trained on the GPU and exported', () => {
  const gpu = setupTestGpu();

  it('gives the float64 reference, applied to the base weights, the loss the trained GPU model has', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const weights = randomWeights(config, 21);
    const gw = await uploadWeights(device, config, weights);
    // Equal-length rows, so the validation batch has no padding and is one reference batch.
    const rows = Array.from({ length: 3 }, (_, i) => {
      const ids = [3 + i, 7, 11 + i, 5, 9 + i, 13, 2 + i, 8];
      return { ids, labels: ids.map((id, t) => (t < 3 ? -100 : id)) };
    });
    const settings = tinyRunSettings('sft', { lr: 0.05, maxSteps: 6, batchSize: 3, gradAccum: 1 });
    const trainer = new Trainer(device, new EngineKernels(device), gw, settings, {
      train: rows,
      validation: rows,
      padId: 0,
    });
    await runTraining(trainer);
    const gpuLoss = (await trainer.evaluate())?.loss ?? Number.NaN;

    const files = adapterFolderFiles({
      baseModel: 'hone/tiny',
      settings,
      modules: await (trainer.lora as GpuLora).readParams(device),
      data: null,
      metrics: [],
    });
    const read = filesReader(
      Object.entries(files).map(([path, bytes]) => ({ path, file: new Blob([new Uint8Array(bytes)]) })),
    );
    const adapter = await loadAdapter(read, 'exported', config);
    const lora = referenceLora(adapter);
    const tokens = rows.map((r) => r.ids);
    const labels = rows.map((r) => r.labels);
    const tuned = referenceForward(config, weights, lora, tokens, labels);
    const base = referenceForward(config, weights, null, tokens, labels);
    expect(Math.abs(tuned - gpuLoss) / tuned).toBeLessThan(1e-5);
    // Training moved it: the base model's loss is another.
    expect(Math.abs(base - tuned)).toBeGreaterThan(0.1);
    trainer.destroy();
    gw.destroy();
  });
});

describe('a zipped adapter', () => {
  it('opens into its files, the wrapping folder taken off, and loads', async () => {
    const config = tinyConfig();
    const zip = await zipAdapterFolder({
      name: 'wrapped',
      baseModel: 'hone/tiny',
      settings: { ...defaultSettings('sft', 1000), loraR: 3 },
      modules: modulesFor(config, 3),
      data: null,
      metrics: [],
    });
    const bytes = new Uint8Array(await zip.arrayBuffer());
    const files = await unzipFolder(bytes, 'wrapped.zip');
    expect(files.map((f) => f.path).sort()).toEqual([
      'README.md',
      'adapter_config.json',
      'adapter_model.safetensors',
      'metrics.jsonl',
    ]);
    const picked = await expandZip([{ path: 'wrapped.zip', file: new Blob([bytes]) }]);
    const adapter = await loadAdapter(filesReader(picked), 'wrapped.zip', config);
    expect(adapter.modules).toHaveLength(config.numLayers * PROJECTIONS.length);
    await expect(unzipFolder(new Uint8Array([1, 2, 3]), 'junk.zip')).rejects.toThrow(/junk.zip: not a zip file/);
  });

  it('is an adapter the CLI takes as it is', async () => {
    const config = tinyConfig();
    const dir = await tempDir('hone-zip-');
    const model = await writeModelFolder(join(dir, 'model'), config, randomWeights(config, 2));
    const zip = await zipAdapterFolder({
      name: 'adapter',
      baseModel: 'hone/tiny',
      settings: { ...defaultSettings('sft', 1000), loraR: 3 },
      modules: modulesFor(config, 3),
      data: null,
      metrics: [],
    });
    const path = join(dir, 'adapter.zip');
    await writeFile(path, new Uint8Array(await zip.arrayBuffer()));
    const args = [
      '--model',
      model,
      '--prompt-ids',
      '[1, 2, 3]',
      '--max-new-tokens',
      '2',
      '--temperature',
      '0',
      '--json',
    ];
    const tuned = await hone('generate', ...args, '--adapter', path);
    expect(tuned.code).toBe(0);
    expect(JSON.parse(tuned.stdout).ids).toHaveLength(2);
    const missing = await hone('generate', ...args, '--adapter', join(dir, 'none.zip'));
    expect(missing.stderr).toContain('none.zip: no such file');
  });
});

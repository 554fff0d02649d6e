import { describe, expect, it } from 'vitest';
import { type ModelConfig, PROJECTIONS, type Projection, projectionShape } from './model-config';
import {
  type AdapterConfig,
  loraScale,
  loraTensorKey,
  matchAdapterToModel,
  PeftError,
  parseAdapterConfig,
  parseLoraTensorKey,
  SCORE_TENSOR_KEY,
  serializeAdapter,
  serializeAdapterConfig,
  targetsModule,
} from './peft';
import { parseSafetensors } from './safetensors';

// adapter_config.json as peft 0.13 saves it for SmolLM2-135M.
const SAVED = {
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M',
  bias: 'none',
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 32,
  lora_dropout: 0.05,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  peft_type: 'LORA',
  r: 16,
  rank_pattern: {},
  revision: null,
  target_modules: ['v_proj', 'q_proj'],
  task_type: 'CAUSAL_LM',
  use_dora: false,
  use_rslora: false,
};

/** A tiny llama: 2 layers, hidden 8, 2 heads of 4 sharing 1 kv head, MLP 12. */
const TINY: ModelConfig = {
  modelType: 'llama',
  vocabSize: 32,
  hiddenSize: 8,
  intermediateSize: 12,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
  gemma: null,
};

function adapter(overrides: Record<string, unknown> = {}): AdapterConfig {
  return parseAdapterConfig({ ...SAVED, r: 4, ...overrides });
}

/** The tensors PEFT would save for `config`, keyed as PEFT keys them. */
function loraTensors(config: AdapterConfig, model = TINY): Map<string, { shape: number[] }> {
  const tensors = new Map<string, { shape: number[] }>();
  for (let layer = 0; layer < model.numLayers; layer++) {
    for (const projection of PROJECTIONS) {
      if (!targetsModule(config, layer, projection)) continue;
      const [out, inner] = projectionShape(model, projection);
      tensors.set(loraTensorKey(layer, projection, 'A'), { shape: [config.r, inner] });
      tensors.set(loraTensorKey(layer, projection, 'B'), { shape: [out, config.r] });
    }
  }
  return tensors;
}

function rejects(run: () => unknown, source: string, ...fragments: string[]): void {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(PeftError);
  const message = (error as Error).message;
  expect(message.startsWith(`${source}: `)).toBe(true);
  for (const fragment of fragments) expect(message).toContain(fragment);
}

const rejectsConfig = (json: unknown, ...fragments: string[]) =>
  rejects(() => parseAdapterConfig(json), 'adapter_config.json', ...fragments);

const rejectsMatch = (config: AdapterConfig, tensors: Map<string, { shape: number[] }>, ...fragments: string[]) =>
  rejects(() => matchAdapterToModel(TINY, config, tensors, 'adapter.safetensors'), 'adapter.safetensors', ...fragments);

const targeted = (config: AdapterConfig, layer: number) =>
  PROJECTIONS.filter((projection) => targetsModule(config, layer, projection));

describe('parseAdapterConfig', () => {
  it('reads a config saved by peft', () => {
    expect(parseAdapterConfig(SAVED)).toEqual({
      peftType: 'LORA',
      taskType: 'CAUSAL_LM',
      baseModelNameOrPath: 'HuggingFaceTB/SmolLM2-135M',
      r: 16,
      loraAlpha: 32,
      loraDropout: 0.05,
      targetModules: ['v_proj', 'q_proj'],
      useRslora: false,
      bias: 'none',
      fanInFanOut: false,
      layersToTransform: null,
      modulesToSave: null,
    } satisfies AdapterConfig);
  });

  it("takes LoraConfig's defaults for absent fields", () => {
    const config = parseAdapterConfig({ peft_type: 'LORA', target_modules: ['q_proj'] });
    expect(config).toMatchObject({ r: 8, loraAlpha: 8, loraDropout: 0, useRslora: false, taskType: null });
    expect(config).toMatchObject({ layersToTransform: null, modulesToSave: null, baseModelNameOrPath: null });
  });

  it('reads "all-linear" as the seven projections', () => {
    const config = adapter({ target_modules: 'all-linear' });
    expect(config.targetModules).toEqual([...PROJECTIONS]);
    expect(targeted(config, 1)).toEqual([...PROJECTIONS]);
  });

  it('matches list entries against the end of module paths, within layers_to_transform', () => {
    const config = adapter({ target_modules: ['q_proj', 'mlp.down_proj', 'model.layers.1.self_attn.k_proj'] });
    expect(targeted(config, 0)).toEqual(['q_proj', 'down_proj']);
    expect(targeted(config, 1)).toEqual(['q_proj', 'k_proj', 'down_proj']);
    // A suffix must start at a dot: "proj" names no module.
    expect(targeted(adapter({ target_modules: ['proj'] }), 0)).toEqual([]);
    const layer1 = adapter({ layers_to_transform: 1 });
    expect(layer1.layersToTransform).toEqual([1]);
    expect([targeted(layer1, 0), targeted(layer1, 1)]).toEqual([[], ['q_proj', 'v_proj']]);
  });

  it('matches a string target as a regular expression over the whole path', () => {
    const config = adapter({ target_modules: String.raw`.*\.(q_proj|v_proj)` });
    expect(targeted(config, 0)).toEqual(['q_proj', 'v_proj']);
    const layer0 = adapter({ target_modules: String.raw`model\.layers\.0\.mlp\..*` });
    expect([targeted(layer0, 0), targeted(layer0, 1)]).toEqual([['gate_proj', 'up_proj', 'down_proj'], []]);
    // Full match: a pattern for part of the path matches nothing.
    expect(targeted(adapter({ target_modules: 'q_proj' }), 0)).toEqual([]);
  });

  it('refuses bad or unsupported fields, naming them', () => {
    rejectsConfig(null, 'not a JSON object');
    rejectsConfig({ ...SAVED, peft_type: 'PREFIX_TUNING' }, 'peft_type', '"PREFIX_TUNING"');
    rejectsConfig({ ...SAVED, peft_type: undefined }, 'peft_type');
    rejectsConfig({ ...SAVED, task_type: 'TOKEN_CLS' }, 'task_type', 'CAUSAL_LM', 'SEQ_CLS');
    for (const r of [0, 2.5, '8']) rejectsConfig({ ...SAVED, r }, 'r must be a positive integer');
    rejectsConfig({ ...SAVED, lora_alpha: 'x' }, 'lora_alpha', 'positive number');
    rejectsConfig({ ...SAVED, lora_dropout: 1 }, 'lora_dropout', '[0, 1)');
    rejectsConfig({ ...SAVED, use_rslora: 'no' }, 'use_rslora');
    rejectsConfig({ ...SAVED, bias: 'all' }, 'bias', '"all"', '"none"');
    rejectsConfig({ ...SAVED, fan_in_fan_out: true }, 'fan_in_fan_out');
    rejectsConfig({ ...SAVED, use_dora: true }, 'use_dora', 'DoRA');
    rejectsConfig({ ...SAVED, rank_pattern: { q_proj: 4 } }, 'rank_pattern');
    rejectsConfig({ ...SAVED, alpha_pattern: { q_proj: 4 } }, 'alpha_pattern');
    rejectsConfig({ ...SAVED, lora_bias: true }, 'lora_bias');
    rejectsConfig({ ...SAVED, exclude_modules: ['k_proj'] }, 'exclude_modules');
    rejectsConfig({ ...SAVED, target_modules: undefined }, 'target_modules');
    rejectsConfig({ ...SAVED, target_modules: [] }, 'target_modules');
    rejectsConfig({ ...SAVED, target_modules: ['q_proj', 3] }, 'target_modules');
    rejectsConfig({ ...SAVED, target_modules: '(q_proj' }, 'target_modules', 'not a valid regular expression');
    rejectsConfig({ ...SAVED, layers_to_transform: [0, -1] }, 'layers_to_transform');
    rejectsConfig({ ...SAVED, target_modules: '.*q_proj', layers_to_transform: [0] }, 'layers_to_transform');
    rejectsConfig({ ...SAVED, base_model_name_or_path: 3 }, 'base_model_name_or_path');
    rejectsConfig({ ...SAVED, modules_to_save: 'lm_head' }, 'modules_to_save');
  });
});

describe('LoRA tensor keys', () => {
  it('names tensors as peft saves them', () => {
    expect(loraTensorKey(0, 'q_proj', 'A')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(loraTensorKey(29, 'down_proj', 'B')).toBe('base_model.model.model.layers.29.mlp.down_proj.lora_B.weight');
  });

  it('parses every key it writes, and the variants other tools write', () => {
    for (const projection of PROJECTIONS) {
      for (const which of ['A', 'B'] as const) {
        const key = loraTensorKey(12, projection, which);
        expect(parseLoraTensorKey(key)).toEqual({ layer: 12, projection, which });
        const named = key.replace(`lora_${which}.weight`, `lora_${which}.default.weight`);
        expect(parseLoraTensorKey(named)).toEqual({ layer: 12, projection, which });
        expect(parseLoraTensorKey(key.slice('base_model.model.'.length))).toEqual({ layer: 12, projection, which });
      }
    }
  });

  it('returns null for other keys', () => {
    for (const key of [
      'base_model.model.model.layers.0.mlp.q_proj.lora_A.weight', // wrong block
      'base_model.model.model.layers.01.self_attn.q_proj.lora_A.weight', // not a canonical index
      'base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.bias',
      'base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight',
      'base_model.model.lm_head.lora_A.weight',
      'base_model.model.model.embed_tokens.lora_embedding_A',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector',
      'model.layers.0.self_attn.q_proj.weight',
      'prefix.model.layers.0.self_attn.q_proj.lora_A.weight',
    ]) {
      expect(parseLoraTensorKey(key)).toBeNull();
    }
  });
});

describe('matchAdapterToModel', () => {
  it('pairs every module, shaped for the model, by layer then projection', () => {
    const config = adapter({ target_modules: 'all-linear' });
    const { modules } = matchAdapterToModel(TINY, config, loraTensors(config));
    expect(modules).toHaveLength(2 * 7);
    expect(modules.map((m) => `${m.layer}.${m.projection}`).slice(0, 8)).toEqual([
      ...PROJECTIONS.map((p) => `0.${p}`),
      '1.q_proj',
    ]);
    const k = modules.find((m) => m.layer === 1 && m.projection === 'k_proj');
    expect(k).toEqual({
      layer: 1,
      projection: 'k_proj',
      keyA: 'base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight',
      keyB: 'base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight',
      shapeA: [4, 8],
      shapeB: [4, 4],
    });
    const down = modules.find((m) => m.projection === 'down_proj');
    expect([down?.shapeA, down?.shapeB]).toEqual([
      [4, 12],
      [8, 4],
    ]);
  });

  it('accepts keys with an adapter name or without the prefix, and reports them as found', () => {
    const config = adapter();
    const renamed = new Map(
      [...loraTensors(config)].map(([key, value]) => [
        key.replace('base_model.model.', '').replace('.weight', '.default.weight'),
        value,
      ]),
    );
    const { modules } = matchAdapterToModel(TINY, config, renamed);
    expect(modules[0].keyA).toBe('model.layers.0.self_attn.q_proj.lora_A.default.weight');
  });

  it('refuses keys that are not LoRA weights of a projection', () => {
    const config = adapter();
    const tensors = loraTensors(config).set('base_model.model.lm_head.lora_A.weight', { shape: [4, 8] });
    rejectsMatch(config, tensors, '"base_model.model.lm_head.lora_A.weight"', 'not the lora_A or lora_B');
    const saved = adapter({ modules_to_save: ['lm_head'] });
    rejectsMatch(
      saved,
      loraTensors(saved).set('base_model.model.lm_head.weight', { shape: [32, 8] }),
      'modules_to_save',
    );
  });

  it('refuses layers the model does not have', () => {
    const config = adapter();
    const tensors = loraTensors(config).set(loraTensorKey(2, 'q_proj', 'A'), { shape: [4, 8] });
    rejectsMatch(config, tensors, loraTensorKey(2, 'q_proj', 'A'), 'layer 2', '2 layers', 'different model');
    rejectsMatch(adapter({ layers_to_transform: [5] }), new Map(), 'layers_to_transform', 'layer 5');
  });

  it('refuses tensors for modules the config does not target', () => {
    const config = adapter();
    const tensors = loraTensors(config).set(loraTensorKey(0, 'k_proj', 'A'), { shape: [4, 8] });
    rejectsMatch(config, tensors, loraTensorKey(0, 'k_proj', 'A'), 'model.layers.0.self_attn.k_proj', 'target_modules');
  });

  it('refuses shapes that do not fit the rank or the model', () => {
    const config = adapter();
    const keyA = loraTensorKey(1, 'v_proj', 'A');
    const keyB = loraTensorKey(1, 'v_proj', 'B');
    rejectsMatch(config, loraTensors(config).set(keyA, { shape: [8, 8] }), keyA, '[8,8]', 'expected [4,8]', 'r = 4');
    rejectsMatch(
      config,
      loraTensors(config).set(keyB, { shape: [8, 4] }),
      keyB,
      'expected [4,4]',
      '[out, in] = [4, 8]',
      'different model',
    );
    rejectsMatch(config, loraTensors(config).set(keyA, { shape: [4, 8, 1] }), keyA, 'expected [4,8]');
    // An adapter of rank 4 read with a config that says 8.
    rejectsMatch(adapter({ r: 8 }), loraTensors(config), 'r = 8');
  });

  it('refuses an A without its B, a B without its A, and the same matrix twice', () => {
    const config = adapter();
    const noB = loraTensors(config);
    noB.delete(loraTensorKey(0, 'q_proj', 'B'));
    rejectsMatch(config, noB, loraTensorKey(0, 'q_proj', 'A'), 'no lora_B');
    const noA = loraTensors(config);
    noA.delete(loraTensorKey(1, 'v_proj', 'A'));
    rejectsMatch(config, noA, loraTensorKey(1, 'v_proj', 'B'), 'no lora_A');
    const twice = loraTensors(config).set('model.layers.0.self_attn.q_proj.lora_A.weight', { shape: [4, 8] });
    rejectsMatch(config, twice, 'both lora_A of model.layers.0.self_attn.q_proj');
  });

  it('refuses a file missing modules the config targets, or holding none', () => {
    const config = adapter();
    const missing = loraTensors(config);
    for (const which of ['A', 'B'] as const) missing.delete(loraTensorKey(1, 'q_proj', which));
    rejectsMatch(config, missing, 'targets model.layers.1.self_attn.q_proj', 'no LoRA tensors');
    rejectsMatch(adapter({ target_modules: 'nothing' }), new Map(), 'no LoRA tensors');
  });
});

describe('a reward model adapter (task_type SEQ_CLS)', () => {
  const seqCls = () => adapter({ task_type: 'SEQ_CLS', modules_to_save: ['classifier', 'score'] });

  it('holds the LoRA and the score head, under the key peft saves it', () => {
    const config = seqCls();
    const tensors = loraTensors(config).set(SCORE_TENSOR_KEY, { shape: [1, TINY.hiddenSize] });
    expect(matchAdapterToModel(TINY, config, tensors).scoreKey).toBe(SCORE_TENSOR_KEY);
    const wrapped = loraTensors(config).set('score.modules_to_save.default.weight', { shape: [1, TINY.hiddenSize] });
    expect(matchAdapterToModel(TINY, config, wrapped).scoreKey).toBe('score.modules_to_save.default.weight');
    expect(matchAdapterToModel(TINY, adapter(), loraTensors(adapter())).scoreKey).toBeNull();
  });

  it('refuses a head of the wrong shape, a missing head, and a head on a language model adapter', () => {
    const config = seqCls();
    const twoLabels = loraTensors(config).set(SCORE_TENSOR_KEY, { shape: [2, TINY.hiddenSize] });
    rejectsMatch(config, twoLabels, SCORE_TENSOR_KEY, `expected [1, ${TINY.hiddenSize}]`, 'one label');
    rejectsMatch(config, loraTensors(config), 'SEQ_CLS', 'no score head');
    const causal = adapter({ modules_to_save: ['score'] });
    rejectsMatch(
      causal,
      loraTensors(causal).set(SCORE_TENSOR_KEY, { shape: [1, TINY.hiddenSize] }),
      SCORE_TENSOR_KEY,
      'modules_to_save are not supported',
    );
  });

  it('is written with its head and read back as peft writes it', () => {
    const config = adapter({ task_type: 'SEQ_CLS', target_modules: ['q_proj'], layers_to_transform: [0] });
    const head = Float32Array.from({ length: TINY.hiddenSize }, (_, i) => i / 10);
    const files = serializeAdapter(
      config,
      new Map([['0.q_proj', { A: new Float32Array(config.r * 8), B: new Float32Array(8 * config.r) }]]),
      head,
    );
    const json = JSON.parse(files['adapter_config.json']);
    expect(json).toMatchObject({ task_type: 'SEQ_CLS', modules_to_save: ['classifier', 'score'] });
    expect(Object.keys(json)).toEqual(Object.keys(json).sort());
    expect(parseAdapterConfig(json).taskType).toBe('SEQ_CLS');
    const file = parseSafetensors(files['adapter_model.safetensors'], 'adapter_model.safetensors');
    expect(file.tensors.get(SCORE_TENSOR_KEY)?.shape).toEqual([1, TINY.hiddenSize]);
    expect(file.readFloat32(SCORE_TENSOR_KEY)).toEqual(head);
    expect(matchAdapterToModel(TINY, parseAdapterConfig(json), file.tensors).scoreKey).toBe(SCORE_TENSOR_KEY);
  });
});

describe('serializeAdapterConfig', () => {
  it('writes what peft reads, and what parseAdapterConfig reads back', () => {
    const config = adapter({ target_modules: ['q_proj', 'v_proj'], use_rslora: true, layers_to_transform: [1] });
    const text = serializeAdapterConfig(config);
    const json = JSON.parse(text);
    expect(json).toEqual({
      base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      layers_to_transform: [1],
      lora_alpha: 32,
      lora_dropout: 0.05,
      peft_type: 'LORA',
      r: 4,
      target_modules: ['q_proj', 'v_proj'],
      task_type: 'CAUSAL_LM',
      use_rslora: true,
    });
    expect(Object.keys(json)).toEqual(Object.keys(json).sort());
    expect(text.endsWith('}\n')).toBe(true);
    expect(parseAdapterConfig(json)).toEqual({ ...config, modulesToSave: null });
  });

  it('writes a new adapter from the fields Hone chooses', () => {
    const projections: Projection[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
    const text = serializeAdapterConfig({
      r: 8,
      loraAlpha: 16,
      loraDropout: 0,
      targetModules: projections,
      useRslora: false,
      layersToTransform: null,
      baseModelNameOrPath: 'Qwen/Qwen2.5-0.5B',
    });
    expect(parseAdapterConfig(JSON.parse(text))).toMatchObject({ r: 8, loraAlpha: 16, targetModules: projections });
  });

  it('refuses to write a config it could not read', () => {
    expect(() =>
      serializeAdapterConfig({
        r: 0,
        loraAlpha: 16,
        loraDropout: 0,
        targetModules: ['q_proj'],
        useRslora: false,
        layersToTransform: null,
        baseModelNameOrPath: null,
      }),
    ).toThrow(/serializeAdapterConfig: r must be a positive integer/);
  });
});

describe('loraScale', () => {
  it('is alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
    expect(loraScale({ r: 16, loraAlpha: 32, useRslora: false })).toBe(2);
    expect(loraScale({ r: 16, loraAlpha: 32, useRslora: true })).toBe(8);
  });
});

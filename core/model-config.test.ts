import { describe, expect, it } from 'vitest';
import { GEMMA3_1B, GEMMA3_270M, LLAMA32_1B, QWEN3_06B, QWEN25_05B, SMOLLM2_135M } from '../tests/fixtures/hub-configs';
import { type ModelConfig, ModelConfigError, parseModelConfig, serializeModelConfig } from './model-config';
import { parameterCount } from './model-memory';

function rejects(json: unknown, field: string | null, ...fragments: string[]): void {
  let error: unknown;
  try {
    parseModelConfig(json);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ModelConfigError);
  const { message, field: named } = error as ModelConfigError;
  expect(named).toBe(field);
  expect(message.startsWith('config.json: ')).toBe(true);
  if (field !== null) expect(message).toContain(field);
  for (const fragment of fragments) expect(message).toContain(fragment);
}

const without = (json: Record<string, unknown>, field: string) => {
  const { [field]: _, ...rest } = json;
  return rest;
};

describe('parseModelConfig on published configs', () => {
  it('reads SmolLM2-135M (llama, tied, 9 heads sharing 3 kv heads)', () => {
    const config = parseModelConfig(SMOLLM2_135M);
    expect(config).toEqual({
      modelType: 'llama',
      vocabSize: 49152,
      hiddenSize: 576,
      intermediateSize: 1536,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 100000,
      ropeScaling: null,
      maxPositionEmbeddings: 8192,
      tieWordEmbeddings: true,
      attentionBias: false,
      qkNorm: false,
      gemma: null,
    } satisfies ModelConfig);
    expect(parameterCount(config)).toBe(134_515_008);
  });

  it('reads Qwen2.5-0.5B (qwen2: q/k/v bias, tied)', () => {
    const config = parseModelConfig(QWEN25_05B);
    expect(config).toEqual({
      modelType: 'qwen2',
      vocabSize: 151936,
      hiddenSize: 896,
      intermediateSize: 4864,
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      headDim: 64,
      rmsNormEps: 1e-6,
      ropeTheta: 1_000_000,
      ropeScaling: null,
      maxPositionEmbeddings: 32768,
      tieWordEmbeddings: true,
      attentionBias: true,
      qkNorm: false,
      gemma: null,
    } satisfies ModelConfig);
    expect(parameterCount(config)).toBe(494_032_768);
  });

  it('reads Qwen3-0.6B (qwen3: q/k norm, head_dim 128 wider than hidden_size / heads)', () => {
    const config = parseModelConfig(QWEN3_06B);
    expect(config).toEqual({
      modelType: 'qwen3',
      vocabSize: 151936,
      hiddenSize: 1024,
      intermediateSize: 3072,
      numLayers: 28,
      numHeads: 16,
      numKvHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-6,
      ropeTheta: 1_000_000,
      ropeScaling: null,
      maxPositionEmbeddings: 40960,
      tieWordEmbeddings: true,
      attentionBias: false,
      qkNorm: true,
      gemma: null,
    } satisfies ModelConfig);
    expect(parameterCount(config)).toBe(596_049_920);
  });

  it('reads Llama-3.2-1B (llama3 RoPE scaling)', () => {
    const config = parseModelConfig(LLAMA32_1B);
    expect(config).toEqual({
      modelType: 'llama',
      vocabSize: 128256,
      hiddenSize: 2048,
      intermediateSize: 8192,
      numLayers: 16,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: {
        type: 'llama3',
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8192,
      },
      maxPositionEmbeddings: 131072,
      tieWordEmbeddings: true,
      attentionBias: false,
      qkNorm: false,
      gemma: null,
    } satisfies ModelConfig);
    expect(parameterCount(config)).toBe(1_235_814_400);
  });
});

describe('parseModelConfig on Gemma 3', () => {
  it('reads gemma-3-270m: five local layers to a global one, √640 as bfloat16, both rotary bases', () => {
    const config = parseModelConfig(GEMMA3_270M);
    expect(config).toMatchObject({
      modelType: 'gemma3_text',
      hiddenSize: 640,
      numLayers: 18,
      numKvHeads: 1,
      headDim: 256,
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      tieWordEmbeddings: true,
      qkNorm: true,
    });
    // √640 = 25.298...: bfloat16 keeps 25.25, as transformers multiplies in the weights' dtype.
    expect(config.gemma).toEqual({
      embedScale: 25.25,
      queryPreAttnScalar: 256,
      slidingWindow: 512,
      slidingLayers: GEMMA3_270M.layer_types.map((t) => t === 'sliding_attention'),
      localRopeTheta: 10000,
    });
    expect(config.gemma?.slidingLayers.filter((s) => !s)).toHaveLength(3);
    expect(parameterCount(config)).toBeGreaterThan(265e6);
    expect(parameterCount(config)).toBeLessThan(271e6);
  });

  it('reads gemma-3-1b without layer_types (every sixth layer global), and transformers 5 rope_parameters', () => {
    const config = parseModelConfig(GEMMA3_1B);
    expect(config.gemma?.slidingLayers).toEqual(Array.from({ length: 26 }, (_, i) => (i + 1) % 6 !== 0));
    expect(parameterCount(config)).toBeGreaterThan(990e6);
    expect(parameterCount(config)).toBeLessThan(1010e6);
    const five = parseModelConfig({
      ...without(without(without(GEMMA3_1B, 'rope_theta'), 'rope_local_base_freq'), 'rope_scaling'),
      dtype: 'float32',
      torch_dtype: undefined,
      rope_parameters: {
        full_attention: { rope_type: 'default', rope_theta: 5e5 },
        sliding_attention: { rope_type: 'default', rope_theta: 2e4 },
      },
    });
    expect(five.ropeTheta).toBe(5e5);
    expect(five.gemma).toMatchObject({ localRopeTheta: 2e4, embedScale: Math.fround(Math.sqrt(1152)) });
    // Gemma3TextConfig's defaults: window 4096, query_pre_attn_scalar 256, head_dim 256, tied.
    const bare = parseModelConfig(
      without(without(without(GEMMA3_1B, 'sliding_window'), 'head_dim'), 'query_pre_attn_scalar'),
    );
    expect(bare.gemma).toMatchObject({ slidingWindow: 4096, queryPreAttnScalar: 256 });
    expect(bare.headDim).toBe(256);
  });

  it("refuses what Hone cannot run of Gemma's options, by field", () => {
    rejects({ ...GEMMA3_1B, final_logit_softcapping: 30 }, 'final_logit_softcapping', 'not supported');
    rejects({ ...GEMMA3_1B, use_bidirectional_attention: true }, 'use_bidirectional_attention');
    rejects({ ...GEMMA3_1B, hidden_activation: 'gelu' }, 'hidden_activation', 'tanh GELU');
    rejects({ ...GEMMA3_1B, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'rope_scaling.rope_type', '"linear"');
    rejects({ ...GEMMA3_270M, layer_types: ['sliding_attention'] }, 'layer_types', '1 entries');
    rejects({ ...GEMMA3_270M, layer_types: GEMMA3_270M.layer_types.map(() => 'chunked') }, 'layer_types', '"chunked"');
  });
});

describe('parseModelConfig defaults', () => {
  it('follows each config class: untied embeddings, rope_theta 10000, kv heads = heads', () => {
    for (const json of [SMOLLM2_135M, QWEN25_05B, QWEN3_06B]) {
      const bare = without(without(without(json, 'tie_word_embeddings'), 'rope_theta'), 'num_key_value_heads');
      const config = parseModelConfig(bare);
      expect(config.tieWordEmbeddings).toBe(false);
      expect(config.ropeTheta).toBe(10000);
      expect(config.numKvHeads).toBe(config.numHeads);
    }
  });

  it('derives head_dim from hidden_size, except for qwen3 whose default is 128', () => {
    expect(parseModelConfig(without(LLAMA32_1B, 'head_dim')).headDim).toBe(64);
    expect(parseModelConfig({ ...LLAMA32_1B, head_dim: null }).headDim).toBe(64);
    expect(parseModelConfig(without({ ...QWEN3_06B, hidden_size: 2048 }, 'head_dim')).headDim).toBe(128);
  });

  it('reads rope_scaling with the older "type" key, and type "default" as no scaling', () => {
    const { rope_type: _, ...legacy } = LLAMA32_1B.rope_scaling;
    expect(parseModelConfig({ ...LLAMA32_1B, rope_scaling: { ...legacy, type: 'llama3' } }).ropeScaling?.factor).toBe(
      32,
    );
    expect(parseModelConfig({ ...SMOLLM2_135M, rope_scaling: { type: 'default' } }).ropeScaling).toBeNull();
  });

  it('reads the rope_parameters of transformers 5', () => {
    const v5 = without(without(LLAMA32_1B, 'rope_scaling'), 'rope_theta');
    const config = parseModelConfig({ ...v5, rope_parameters: { ...LLAMA32_1B.rope_scaling, rope_theta: 500000 } });
    expect(config.ropeTheta).toBe(500000);
    expect(config.ropeScaling).toEqual(parseModelConfig(LLAMA32_1B).ropeScaling);
    const plain = parseModelConfig({ ...v5, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
    expect([plain.ropeTheta, plain.ropeScaling]).toEqual([1e6, null]);
  });
});

describe('parseModelConfig errors name the field', () => {
  it('refuses a file that is not an object', () => {
    rejects(null, null, 'not a JSON object');
    rejects([SMOLLM2_135M], null, 'not a JSON object');
  });

  it('refuses unsupported model types, naming the supported ones', () => {
    rejects(
      { ...SMOLLM2_135M, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] },
      'model_type',
      '"gpt2"',
      'GPT2LMHeadModel',
      'llama, qwen2, qwen3, gemma3_text',
    );
    rejects(without(SMOLLM2_135M, 'model_type'), 'model_type', 'not supported');
  });

  it('refuses sizes that are missing or not positive integers', () => {
    for (const field of [
      'vocab_size',
      'hidden_size',
      'intermediate_size',
      'num_hidden_layers',
      'num_attention_heads',
      'max_position_embeddings',
    ]) {
      rejects(without(SMOLLM2_135M, field), field, 'is missing');
      rejects({ ...SMOLLM2_135M, [field]: 0 }, field, 'positive integer', 'got 0');
      rejects({ ...SMOLLM2_135M, [field]: 576.5 }, field, 'positive integer');
      rejects({ ...SMOLLM2_135M, [field]: '576' }, field, 'got "576"');
    }
    rejects({ ...SMOLLM2_135M, num_key_value_heads: -3 }, 'num_key_value_heads', 'positive integer');
  });

  it('refuses head layouts the attention cannot use', () => {
    rejects(
      { ...SMOLLM2_135M, num_key_value_heads: 4 },
      'num_key_value_heads',
      '4 does not divide num_attention_heads 9',
    );
    rejects({ ...SMOLLM2_135M, head_dim: 63 }, 'head_dim', 'even');
    rejects(
      { ...SMOLLM2_135M, num_attention_heads: 7, num_key_value_heads: 7 },
      'head_dim',
      'is missing',
      'not a multiple of num_attention_heads 7',
    );
  });

  it('refuses bad norm and RoPE numbers', () => {
    rejects({ ...SMOLLM2_135M, rms_norm_eps: -1e-5 }, 'rms_norm_eps', 'positive number');
    rejects(without(SMOLLM2_135M, 'rms_norm_eps'), 'rms_norm_eps', 'is missing');
    rejects({ ...SMOLLM2_135M, rope_theta: 'big' }, 'rope_theta', 'positive number');
  });

  it('refuses RoPE scalings other than llama3, and bad llama3 parameters', () => {
    for (const type of ['linear', 'dynamic', 'yarn', 'longrope']) {
      rejects(
        { ...SMOLLM2_135M, rope_scaling: { type, factor: 2 } },
        'rope_scaling.type',
        `"${type}" is not supported`,
        'llama3',
      );
      rejects({ ...SMOLLM2_135M, rope_scaling: { rope_type: type, factor: 2 } }, 'rope_scaling.rope_type', `"${type}"`);
    }
    const llama3 = LLAMA32_1B.rope_scaling;
    rejects({ ...LLAMA32_1B, rope_scaling: { factor: 32 } }, 'rope_scaling.type', 'is missing');
    rejects({ ...LLAMA32_1B, rope_scaling: 'llama3' }, 'rope_scaling', 'must be an object');
    rejects({ ...LLAMA32_1B, rope_scaling: without(llama3, 'factor') }, 'rope_scaling.factor', 'is missing');
    rejects({ ...LLAMA32_1B, rope_scaling: { ...llama3, factor: 0.5 } }, 'rope_scaling.factor', 'at least 1');
    rejects(
      { ...LLAMA32_1B, rope_scaling: { ...llama3, high_freq_factor: 1 } },
      'rope_scaling.high_freq_factor',
      'greater than low_freq_factor',
    );
    rejects(
      { ...LLAMA32_1B, rope_scaling: { ...llama3, original_max_position_embeddings: 8192.5 } },
      'rope_scaling.original_max_position_embeddings',
      'positive integer',
    );
    rejects(
      { ...LLAMA32_1B, rope_parameters: { rope_type: 'yarn', rope_theta: 1 } },
      'rope_parameters.rope_type',
      '"yarn"',
    );
  });

  it('refuses features Hone cannot run instead of ignoring them', () => {
    rejects({ ...SMOLLM2_135M, tie_word_embeddings: 'yes' }, 'tie_word_embeddings', 'true or false');
    rejects({ ...SMOLLM2_135M, hidden_act: 'gelu' }, 'hidden_act', '"gelu"', 'SiLU');
    rejects({ ...SMOLLM2_135M, mlp_bias: true }, 'mlp_bias', 'not supported');
    rejects({ ...SMOLLM2_135M, attention_bias: true }, 'attention_bias', 'o_proj');
    rejects({ ...QWEN3_06B, attention_bias: true }, 'attention_bias', 'o_proj');
    rejects({ ...QWEN25_05B, use_sliding_window: true }, 'use_sliding_window', 'sliding-window');
  });
});

describe('serializeModelConfig', () => {
  it('round-trips every supported architecture through parseModelConfig', () => {
    const base = parseModelConfig({
      model_type: 'llama',
      vocab_size: 101,
      hidden_size: 48,
      intermediate_size: 80,
      num_hidden_layers: 3,
      num_attention_heads: 6,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 5000,
      max_position_embeddings: 256,
      tie_word_embeddings: true,
    });
    const variants = [
      base,
      { ...base, tieWordEmbeddings: false },
      { ...base, modelType: 'qwen2' as const, attentionBias: true },
      { ...base, modelType: 'qwen3' as const, qkNorm: true, headDim: 16 },
      {
        ...base,
        modelType: 'gemma3_text' as const,
        qkNorm: true,
        headDim: 16,
        gemma: {
          embedScale: Math.fround(Math.sqrt(48)),
          queryPreAttnScalar: 12,
          slidingWindow: 5,
          slidingLayers: [true, false, true],
          localRopeTheta: 100,
        },
      },
      {
        ...base,
        ropeScaling: {
          type: 'llama3' as const,
          factor: 32,
          lowFreqFactor: 1,
          highFreqFactor: 4,
          originalMaxPositionEmbeddings: 64,
        },
      },
    ];
    for (const config of variants) expect(parseModelConfig(JSON.parse(serializeModelConfig(config)))).toEqual(config);
  });
});

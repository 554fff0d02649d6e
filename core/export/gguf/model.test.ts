import { GGMLQuantizationType, gguf as parseGguf } from '@huggingface/gguf';
import { describe, expect, it } from 'vitest';
import { gemmaTokenizerFiles, gemmaTokenizerSize } from '../../../tests/helpers/gemma-tokenizer';
import { tinyTokenizerFiles } from '../../../tests/helpers/tiny-tokenizer';
import { randomLora, randomWeights, tinyConfig, tinyGemmaConfig } from '../../../workers/engine/reference/random-model';
import { type Checkpoint, loadAdapter, loadCheckpoint, type ReadFile } from '../../checkpoint';
import { halfBits } from '../../float16';
import { expectedTensors, type ModelConfig, projectionKey, serializeModelConfig } from '../../model-config';
import { serializeAdapter } from '../../peft';
import { serializeSafetensors } from '../../safetensors';
import type { MergeAdapter } from '../merge';
import { type GgufPlan, writeGguf } from './format';
import { loraGgufPlan, mergeAdapterOf, modelGgufPlan } from './index';
import { permuteRows } from './model';
import { CHECK_TEXT, checkHash, preTokenizerFromJson } from './pre-tokenizer';
import { quantizeQ8_0 } from './quantize';

type Files = Record<string, string | Uint8Array>;

function reader(files: Files): ReadFile {
  return async (name) => (name in files ? new Blob([files[name] as BlobPart]) : null);
}

/** A model folder in memory: config, F32 weights and the tiny tokenizer's files. */
async function model(config: ModelConfig, seed = 1, extra: Files = {}) {
  const weights = randomWeights(config, seed);
  const shapes = expectedTensors(config);
  const tensors = new Map(
    [...weights].map(([key, values]) => [
      key,
      { dtype: 'F32' as const, shape: shapes.get(key) as number[], data: Float32Array.from(values) },
    ]),
  );
  const files: Files = {
    'config.json': serializeModelConfig(config),
    'model.safetensors': serializeSafetensors(tensors),
    ...tinyTokenizerFiles(),
    ...extra,
  };
  const read = reader(files);
  return { read, checkpoint: await loadCheckpoint(read, 'tiny'), weights, files };
}

async function bytesOf(plan: GgufPlan): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeGguf(plan, (chunk) => void chunks.push(chunk));
  return new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
}

/** The file read back by @huggingface/gguf, and each tensor's bytes by name. */
async function readBack(plan: GgufPlan) {
  const bytes = await bytesOf(plan);
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('range') ?? '') as RegExpExecArray;
    const [start, end] = [Number(range[1]), Math.min(Number(range[2]), bytes.length - 1)];
    return new Response(bytes.slice(start, end + 1), {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${end}/${bytes.length}` },
    });
  };
  const parsed = await parseGguf('https://hone.invalid/m.gguf', { fetch: fetch as typeof globalThis.fetch });
  const infos = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
  const data = (name: string, length: number) => {
    const info = infos.get(name);
    if (!info) throw new Error(`no tensor ${name}`);
    const start = Number(parsed.tensorDataOffset + info.offset);
    return bytes.slice(start, start + length);
  };
  return { metadata: parsed.metadata as Record<string, unknown>, infos, data };
}

const f32Bytes = (values: ArrayLike<number>) => new Uint8Array(Float32Array.from(values).buffer);
const f16Bytes = (values: ArrayLike<number>) => new Uint8Array(Uint16Array.from(values, halfBits).buffer);

const LLAMA = tinyConfig({
  vocabSize: 300,
  hiddenSize: 64,
  intermediateSize: 40,
  headDim: 16,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 128,
  ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
});

/** A Gemma 3 laid out as llama.cpp runs it: every sixth layer global, local rotary base 10 000, scores by 1/√hd. */
const GEMMA = tinyGemmaConfig({
  vocabSize: gemmaTokenizerSize().size + 3,
  numLayers: 6,
  hiddenSize: 32,
  headDim: 16,
  gemma: {
    embedScale: Math.fround(Math.sqrt(32)),
    queryPreAttnScalar: 16,
    slidingWindow: 3,
    slidingLayers: [true, true, true, true, true, false],
    localRopeTheta: 10_000,
  },
});

/** LlamaModel.permute as numpy runs it: reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape. */
function numpyPermute(values: ArrayLike<number>, heads: number, cols: number): number[] {
  const rows = values.length / cols;
  const [a, b, c] = [heads, 2, rows / heads / 2];
  const out: number[] = [];
  // The swapped array's shape is [a, c, b, cols]; read it in C order through the original strides.
  for (let i = 0; i < a; i++)
    for (let k = 0; k < c; k++)
      for (let j = 0; j < b; j++)
        for (let col = 0; col < cols; col++) out.push(values[((i * b + j) * c + k) * cols + col]);
  return out;
}

describe('a model as GGUF', () => {
  it("writes llama's hyperparameters, names, ggml dims and the converter's types (q8_0, F16 fallback, F32 norms)", async () => {
    const { read, checkpoint, weights } = await model(LLAMA);
    const plan = await modelGgufPlan(checkpoint, read, { dtype: 'q8_0', name: 'tiny llama', source: 'tiny' });
    const { metadata, infos, data } = await readBack(plan);
    expect(metadata).toMatchObject({
      'general.architecture': 'llama',
      'general.type': 'model',
      'general.name': 'tiny llama',
      'general.file_type': 7,
      'general.quantization_version': 2,
      'general.alignment': 32,
      'llama.block_count': 2,
      'llama.context_length': 128,
      'llama.embedding_length': 64,
      'llama.feed_forward_length': 40,
      'llama.attention.head_count': 4,
      'llama.attention.head_count_kv': 2,
      'llama.attention.key_length': 16,
      'llama.attention.value_length': 16,
      'llama.rope.freq_base': 10000,
      'llama.rope.dimension_count': 16,
      'llama.vocab_size': 300,
    });
    expect(metadata['llama.attention.layer_norm_rms_epsilon']).toBeCloseTo(1e-5, 10);
    const layer = (l: number) =>
      ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'].map(
        (part) => `blk.${l}.${part}.weight`,
      );
    expect(new Set(infos.keys())).toEqual(
      new Set([
        'rope_freqs.weight',
        'token_embd.weight',
        ...layer(0),
        ...layer(1),
        'output_norm.weight',
        'output.weight',
      ]),
    );
    const shape = (name: string) => [(infos.get(name)?.shape ?? []).map(Number), infos.get(name)?.dtype];
    const { F32, F16, Q8_0 } = GGMLQuantizationType;
    expect(shape('token_embd.weight')).toEqual([[64, 300], Q8_0]);
    expect(shape('output.weight')).toEqual([[64, 300], Q8_0]);
    expect(shape('blk.0.attn_q.weight')).toEqual([[64, 64], Q8_0]);
    expect(shape('blk.0.attn_k.weight')).toEqual([[64, 32], Q8_0]);
    expect(shape('blk.1.ffn_gate.weight')).toEqual([[64, 40], Q8_0]);
    expect(shape('blk.1.ffn_down.weight')).toEqual([[40, 64], F16]); // rows of 40: not whole Q8_0 blocks
    expect(shape('blk.0.attn_norm.weight')).toEqual([[64], F32]);
    expect(shape('rope_freqs.weight')).toEqual([[8], F32]);

    // k's rows interleaved by kv head, then quantized; down_proj as fp16; norms as they are.
    const k = weights.get(projectionKey(0, 'k_proj')) as Float64Array;
    const permutedK = Float32Array.from(numpyPermute(k, 2, 64));
    expect(data('blk.0.attn_k.weight', (32 * 64 * 34) / 32)).toEqual(quantizeQ8_0(permutedK, 64));
    const down = weights.get(projectionKey(1, 'down_proj')) as Float64Array;
    expect(data('blk.1.ffn_down.weight', down.length * 2)).toEqual(f16Bytes(down));
    const norm = weights.get('model.layers.0.input_layernorm.weight') as Float64Array;
    expect(data('blk.0.attn_norm.weight', 64 * 4)).toEqual(f32Bytes(norm));

    // rope_freqs: LlamaModel.generate_extra_tensors' factors, from its formula.
    const factors = new Float32Array(data('rope_freqs.weight', 32).buffer);
    const expected = Array.from({ length: 8 }, (_, i) => {
      const wavelen = 2 * Math.PI * 10000 ** ((2 * i) / 16);
      if (wavelen < 64 / 4) return 1;
      if (wavelen > 64 / 1) return 8;
      const smooth = (64 / wavelen - 1) / (4 - 1);
      return 1 / ((1 - smooth) / 8 + smooth);
    });
    expected.forEach((f, i) => {
      expect(factors[i]).toBeCloseTo(f, 5);
    });
    expect(expected.filter((f) => f > 1 && f < 8).length).toBeGreaterThan(0); // 1, blended, and 8 all occur
    expect(expected[0]).toBe(1);
    expect(expected.at(-1)).toBe(8);
  });

  it("permutes llama's q and k rows as LlamaModel.permute does, which turns rotate-half RoPE into adjacent pairs", () => {
    for (const [heads, cols] of [
      [4, 3],
      [2, 5],
      [1, 1],
    ]) {
      const values = Float32Array.from({ length: heads * 6 * cols }, (_, i) => i * 0.5 - 3);
      expect([...permuteRows(values, heads, cols)]).toEqual(numpyPermute(values, heads, cols));
    }
    // One head of q (hd = 6): HF rotates pair (i, i + 3) by θ_i; llama.cpp's NORM rope rotates (2i, 2i + 1) by θ_i.
    const q = Float32Array.from([0.3, -1.2, 0.7, 2.1, -0.4, 1.5]);
    const theta = [0.9, 0.2, 0.05];
    const hf = new Float64Array(6);
    for (let i = 0; i < 3; i++) {
      const [c, s] = [Math.cos(theta[i]), Math.sin(theta[i])];
      hf[i] = q[i] * c - q[i + 3] * s;
      hf[i + 3] = q[i + 3] * c + q[i] * s;
    }
    const p = permuteRows(q, 1, 1);
    const llama = new Float64Array(6);
    for (let i = 0; i < 3; i++) {
      const [c, s] = [Math.cos(theta[i]), Math.sin(theta[i])];
      llama[2 * i] = p[2 * i] * c - p[2 * i + 1] * s;
      llama[2 * i + 1] = p[2 * i + 1] * c + p[2 * i] * s;
    }
    const permutedHf = permuteRows(Float32Array.from(hf), 1, 1);
    llama.forEach((v, i) => {
      expect(v).toBeCloseTo(permutedHf[i], 6);
    });
  });

  it('writes qwen2 unpermuted in f32, with F32 q/k/v biases and no output tensor when tied', async () => {
    const config = tinyConfig({ modelType: 'qwen2', attentionBias: true, vocabSize: 300 });
    const { read, checkpoint, weights } = await model(config, 2);
    const { metadata, infos, data } = await readBack(
      await modelGgufPlan(checkpoint, read, { dtype: 'f32', name: 'q', source: 'tiny' }),
    );
    expect(metadata['general.architecture']).toBe('qwen2');
    expect(metadata['general.file_type']).toBe(0);
    expect(metadata['qwen2.embedding_length']).toBe(24);
    expect(metadata['qwen2.rope.dimension_count']).toBeUndefined();
    expect(infos.has('output.weight')).toBe(false);
    expect(infos.has('rope_freqs.weight')).toBe(false);
    const q = weights.get(projectionKey(1, 'q_proj')) as Float64Array;
    expect(data('blk.1.attn_q.weight', q.length * 4)).toEqual(f32Bytes(q));
    const bias = weights.get('model.layers.1.self_attn.k_proj.bias') as Float64Array;
    expect(infos.get('blk.1.attn_k.bias')?.dtype).toBe(GGMLQuantizationType.F32);
    expect(data('blk.1.attn_k.bias', bias.length * 4)).toEqual(f32Bytes(bias));
  });

  it("writes qwen3's q/k norms and its head_dim apart from hidden / heads, in f16", async () => {
    const config = tinyConfig({ modelType: 'qwen3', qkNorm: true, vocabSize: 300, headDim: 10 });
    const { read, checkpoint, weights } = await model(config, 3);
    const { metadata, infos, data } = await readBack(
      await modelGgufPlan(checkpoint, read, { dtype: 'f16', name: 'q3', source: 'tiny' }),
    );
    expect(metadata).toMatchObject({ 'qwen3.attention.key_length': 10, 'qwen3.embedding_length': 24 });
    expect(infos.get('blk.0.attn_q_norm.weight')?.shape.map(Number)).toEqual([10]);
    expect(infos.get('blk.0.attn_k_norm.weight')?.dtype).toBe(GGMLQuantizationType.F32);
    expect(infos.get('blk.0.attn_q.weight')?.shape.map(Number)).toEqual([24, 40]);
    const embed = weights.get('model.embed_tokens.weight') as Float64Array;
    expect(data('token_embd.weight', embed.length * 2)).toEqual(f16Bytes(embed));
  });

  it("writes Gemma 3 as llama.cpp's gemma3: its keys, every norm as 1 + w under its own name, q and k unpermuted", async () => {
    const { read, checkpoint, weights } = await model(GEMMA, 5, gemmaTokenizerFiles());
    const { metadata, infos, data } = await readBack(
      await modelGgufPlan(checkpoint, read, { dtype: 'f32', name: 'g', source: 'tiny' }),
    );
    expect(metadata).toMatchObject({
      'general.architecture': 'gemma3',
      'gemma3.block_count': 6,
      'gemma3.attention.sliding_window': 3,
      'gemma3.rope.freq_base': 1000,
      'gemma3.attention.key_length': 16,
      'tokenizer.ggml.model': 'llama',
    });
    const plusOne = (key: string) => f32Bytes(Array.from(weights.get(key) as Float64Array, (w) => w + 1));
    const names: [string, string][] = [
      ['model.layers.2.input_layernorm.weight', 'blk.2.attn_norm.weight'],
      ['model.layers.2.post_attention_layernorm.weight', 'blk.2.post_attention_norm.weight'],
      ['model.layers.2.pre_feedforward_layernorm.weight', 'blk.2.ffn_norm.weight'],
      ['model.layers.2.post_feedforward_layernorm.weight', 'blk.2.post_ffw_norm.weight'],
      ['model.layers.2.self_attn.q_norm.weight', 'blk.2.attn_q_norm.weight'],
      ['model.layers.2.self_attn.k_norm.weight', 'blk.2.attn_k_norm.weight'],
      ['model.norm.weight', 'output_norm.weight'],
    ];
    for (const [key, name] of names)
      expect(data(name, (weights.get(key) as Float64Array).length * 4)).toEqual(plusOne(key));
    const q = weights.get(projectionKey(1, 'q_proj')) as Float64Array;
    expect(data('blk.1.attn_q.weight', q.length * 4)).toEqual(f32Bytes(q));
    expect(infos.has('output.weight')).toBe(false);
  });

  it('refuses a Gemma 3 whose layout llama.cpp fixes otherwise, naming the config field', async () => {
    const gemma = GEMMA.gemma as NonNullable<ModelConfig['gemma']>;
    const refused = async (layout: Partial<NonNullable<ModelConfig['gemma']>>, message: RegExp) => {
      const { read, checkpoint } = await model({ ...GEMMA, gemma: { ...gemma, ...layout } }, 5, gemmaTokenizerFiles());
      await expect(modelGgufPlan(checkpoint, read, { dtype: 'f16', name: 'g', source: 'tiny' })).rejects.toThrow(
        message,
      );
    };
    await refused(
      { slidingLayers: [true, false, true, true, true, false] },
      /^tiny\/config\.json: layer_types makes layers \[1, 5\] global; llama\.cpp runs Gemma 3 with every sixth layer global \(\[5\] here\)/,
    );
    await refused({ localRopeTheta: 10 }, /the local layers' rope_theta is 10; llama\.cpp uses 10000/);
    await refused(
      { queryPreAttnScalar: 5 },
      /query_pre_attn_scalar is 5; llama\.cpp scales this model's attention by 1\/√16/,
    );
  });

  it('folds an adapter into the weights (W + s·B·A) before permuting them', async () => {
    const { read, checkpoint, weights } = await model(LLAMA, 4);
    const lora = randomLora(LLAMA, ['q_proj', 'v_proj'], 3, 6, false, 9);
    const adapter: MergeAdapter = {
      r: 3,
      scale: 2,
      modules: new Map(
        [...lora.modules].map(([k, m]) => [k, { A: Float32Array.from(m.A), B: Float32Array.from(m.B) }]),
      ),
    };
    const { data } = await readBack(
      await modelGgufPlan(checkpoint, read, { dtype: 'f32', name: 'm', source: 'tiny', adapter }),
    );
    const merged = (layer: number, projection: 'q_proj' | 'v_proj' | 'k_proj') => {
      const w = Float32Array.from(weights.get(projectionKey(layer, projection)) as Float64Array);
      const module = lora.modules.get(`${layer}.${projection}`);
      if (!module) return w;
      const inDim = 64;
      for (let o = 0; o < w.length / inDim; o++)
        for (let i = 0; i < inDim; i++) {
          let sum = 0;
          for (let k = 0; k < 3; k++) sum += module.B[o * 3 + k] * module.A[k * inDim + i];
          w[o * inDim + i] += 2 * sum;
        }
      return w;
    };
    const close = (bytes: Uint8Array, expected: ArrayLike<number>) => {
      const got = new Float32Array(bytes.buffer);
      for (let i = 0; i < expected.length; i++) expect(got[i]).toBeCloseTo(expected[i], 5);
    };
    close(data('blk.1.attn_v.weight', 32 * 64 * 4), merged(1, 'v_proj'));
    close(data('blk.0.attn_q.weight', 64 * 64 * 4), numpyPermute(merged(0, 'q_proj'), 4, 64));
    close(data('blk.0.attn_k.weight', 32 * 64 * 4), numpyPermute(merged(0, 'k_proj'), 2, 64));
  });
});

describe("the tokenizer's GGUF metadata", () => {
  it('writes the vocabulary padded to vocab_size, token types, merges, special ids and the chat template', async () => {
    const config = tinyConfig({ vocabSize: 300 });
    const files = tinyTokenizerFiles();
    const { read, checkpoint } = await model(config);
    const plan = await modelGgufPlan(checkpoint, read, { dtype: 'f32', name: 't', source: 'tiny' });
    expect(plan.tokenizer).toMatchObject({ preTokenizer: 'gpt-2', preTokenizerFrom: 'tokenizer.json' });
    const { metadata } = await readBack(plan);
    const json = JSON.parse(files['tokenizer.json']);
    const tokens = metadata['tokenizer.ggml.tokens'] as string[];
    const types = metadata['tokenizer.ggml.token_type'] as number[];
    expect(metadata['tokenizer.ggml.model']).toBe('gpt2');
    expect(metadata['tokenizer.ggml.pre']).toBe('gpt-2');
    expect(tokens).toHaveLength(300);
    for (const [token, id] of Object.entries(json.model.vocab as Record<string, number>)) {
      expect([tokens[id], types[id]]).toEqual([token, 1]);
    }
    const imEnd = json.added_tokens.find((t: { content: string }) => t.content === '<|im_end|>').id;
    const eot = json.added_tokens.find((t: { content: string }) => t.content === '<|endoftext|>').id;
    expect([tokens[imEnd], types[imEnd]]).toEqual(['<|im_end|>', 3]);
    expect([tokens[265], types[265], tokens[299], types[299]]).toEqual(['[PAD265]', 5, '[PAD299]', 5]);
    expect(metadata['tokenizer.ggml.merges']).toEqual(json.model.merges);
    expect(metadata['tokenizer.ggml.eos_token_id']).toBe(imEnd);
    expect(metadata['tokenizer.ggml.padding_token_id']).toBe(eot);
    expect(metadata['tokenizer.ggml.bos_token_id']).toBeUndefined();
    expect(metadata['tokenizer.ggml.add_bos_token']).toBe(false);
    expect(metadata['tokenizer.chat_template']).toBe(JSON.parse(files['tokenizer_config.json']).chat_template);
  });

  it('reads merge pairs, user-defined tokens, BOS from the template or config.json, and chat_template.jinja', async () => {
    const files = tinyTokenizerFiles();
    const json = JSON.parse(files['tokenizer.json']);
    json.model.merges = json.model.merges.map((m: string) => m.split(' '));
    json.model.merges.push(['a b', 'c']);
    json.added_tokens.push({ id: 265, content: 'hello▁world', special: false, normalized: false });
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: {},
    };
    const config = JSON.parse(files['tokenizer_config.json']);
    delete config.chat_template;
    config.bos_token = '<|im_start|>';
    const { read, checkpoint } = await model(tinyConfig({ vocabSize: 270 }), 1, {
      'tokenizer.json': JSON.stringify(json),
      'tokenizer_config.json': JSON.stringify(config),
      'chat_template.jinja': 'JINJA',
      'config.json': JSON.stringify({
        ...JSON.parse(serializeModelConfig(tinyConfig({ vocabSize: 270 }))),
        pad_token_id: 7,
      }),
    });
    const { metadata } = await readBack(
      await modelGgufPlan(checkpoint, read, { dtype: 'f32', name: 't', source: 'tiny' }),
    );
    expect((metadata['tokenizer.ggml.merges'] as string[]).slice(0, 2)).toEqual(['h e', 'l l']);
    expect((metadata['tokenizer.ggml.merges'] as string[]).at(-1)).toBe('a\u0120b c');
    expect((metadata['tokenizer.ggml.tokens'] as string[])[265]).toBe('hello world');
    expect((metadata['tokenizer.ggml.token_type'] as number[])[265]).toBe(4);
    const start = json.added_tokens.find((t: { content: string }) => t.content === '<|im_start|>').id;
    expect(metadata['tokenizer.ggml.bos_token_id']).toBe(start);
    expect(metadata['tokenizer.ggml.add_bos_token']).toBe(true);
    expect(metadata['tokenizer.ggml.padding_token_id']).toBe(json.added_tokens[0].id); // tokenizer_config's first
    expect(metadata['tokenizer.chat_template']).toBe('JINJA');
  });

  it('refuses a folder without tokenizer.json, or a tokenizer llama.cpp would not run the same, naming the file', async () => {
    const config = tinyConfig({ vocabSize: 300 });
    const plan = async (extra: Files, drop?: string) => {
      const { files } = await model(config, 1, extra);
      if (drop) delete files[drop];
      const read = reader(files);
      return modelGgufPlan(await loadCheckpoint(read, 'tiny'), read, { dtype: 'f16', name: 't', source: 'tiny' });
    };
    await expect(plan({}, 'tokenizer.json')).rejects.toThrow('tiny: no tokenizer.json');
    const json = JSON.parse(tinyTokenizerFiles()['tokenizer.json']);
    const wordPiece = { ...json, model: { type: 'WordPiece', vocab: {} } };
    await expect(plan({ 'tokenizer.json': JSON.stringify(wordPiece) })).rejects.toThrow(
      /^tiny\/tokenizer\.json: a WordPiece tokenizer; GGUF export supports byte-level BPE/,
    );
    const spm = { ...json, model: { ...json.model, byte_fallback: true }, decoder: { type: 'Sequence', decoders: [] } };
    await expect(plan({ 'tokenizer.json': JSON.stringify(spm) })).rejects.toThrow(
      /tokenizer\.json: the normalizer does not write spaces as ▁/,
    );
    const noDecoder = { ...json, decoder: null };
    await expect(plan({ 'tokenizer.json': JSON.stringify(noDecoder) })).rejects.toThrow(
      /tokenizer\.json: a BPE tokenizer without byte fallback or a ByteLevel decoder/,
    );
    const metaspace = { ...json, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' } };
    await expect(plan({ 'tokenizer.json': JSON.stringify(metaspace) })).rejects.toThrow(
      /tokenizer\.json: its pre-tokenizer is not one llama\.cpp's converter knows \(check hash [0-9a-f]{64}\)/,
    );
    await expect(
      modelGgufPlan(
        (await model(tinyConfig({ vocabSize: 100 }))).checkpoint as Checkpoint,
        reader(tinyTokenizerFiles()),
        {
          dtype: 'f16',
          name: 't',
          source: 'tiny',
        },
      ),
    ).rejects.toThrow(/tiny\/tokenizer\.json: token .* has id \d+, but config\.json's vocab_size is 100/);
  });

  it("writes a SentencePiece-style BPE as llama.cpp's SPM vocabulary: scores from merge ranks, byte and control types", async () => {
    const { read, checkpoint } = await model(GEMMA, 5, gemmaTokenizerFiles());
    const plan = await modelGgufPlan(checkpoint, read, { dtype: 'f16', name: 'g', source: 'tiny' });
    expect(plan.tokenizer).toMatchObject({ vocabulary: 'llama', preTokenizer: 'default', hash: null });
    const { metadata } = await readBack(plan);
    const json = JSON.parse(gemmaTokenizerFiles()['tokenizer.json']);
    const vocab = json.model.vocab as Record<string, number>;
    const tokens = metadata['tokenizer.ggml.tokens'] as string[];
    const scores = metadata['tokenizer.ggml.scores'] as number[];
    const types = metadata['tokenizer.ggml.token_type'] as number[];
    const { size, startOfTurn } = gemmaTokenizerSize();
    expect(tokens).toHaveLength(GEMMA.vocabSize);
    expect(metadata).toMatchObject({
      'tokenizer.ggml.pre': 'default',
      'tokenizer.ggml.add_space_prefix': false,
      'tokenizer.ggml.bos_token_id': 2,
      'tokenizer.ggml.eos_token_id': 1,
      'tokenizer.ggml.unknown_token_id': 3,
      'tokenizer.ggml.padding_token_id': 0,
      'tokenizer.ggml.add_bos_token': true,
    });
    // Merge i makes its piece with score -i; llama.cpp's SPM merges the highest-scoring pair first.
    json.model.merges.forEach((merge: string, i: number) => {
      const id = vocab[merge.replace(' ', '')];
      expect([tokens[id], scores[id], types[id]]).toEqual([merge.replace(' ', ''), -i, 1]);
    });
    expect([tokens[vocab['<0x0A>']], scores[vocab['<0x0A>']], types[vocab['<0x0A>']]]).toEqual(['<0x0A>', 0, 6]);
    expect([scores[vocab.a], types[vocab.a]]).toEqual([-json.model.merges.length, 1]);
    expect([tokens[3], types[3]]).toEqual(['<unk>', 3]);
    expect([tokens[startOfTurn], scores[startOfTurn], types[startOfTurn]]).toEqual(['<start_of_turn>', -1000, 3]);
    expect([tokens[size], scores[size], types[size]]).toEqual([`[PAD${size}]`, -10000, 5]);
    expect(metadata['tokenizer.chat_template']).toContain('<start_of_turn>');
    expect(metadata['tokenizer.ggml.merges']).toBeUndefined();

    const metaspace = { ...json, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' } };
    const files = { ...gemmaTokenizerFiles(), 'tokenizer.json': JSON.stringify(metaspace) };
    const refused = await model(GEMMA, 5, files);
    await expect(
      modelGgufPlan(refused.checkpoint, refused.read, { dtype: 'f16', name: 'g', source: 'tiny' }),
    ).rejects.toThrow(
      /^tiny\/tokenizer\.json: pre_tokenizer .*Metaspace.*: llama\.cpp's SentencePiece tokenizer does not split/,
    );
  });

  it("hashes the converter's check text as Python prints the ids, and recognizes the families' pre-tokenizers", async () => {
    expect(await checkHash([1, 2, 3])).toBe('a36b1f2c3f84522dd1005145646617d7054c0851e97c72a039c0bdfac9fa07f3');
    // The text itself, against Python's sha256(chktxt.encode()) of the converter's literal.
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(CHECK_TEXT));
    expect(Buffer.from(digest).toString('hex')).toBe(
      'a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da',
    );
    expect([...CHECK_TEXT].length).toBe(350);
    const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, use_regex: useRegex });
    const split = (regex: string) => ({
      type: 'Split',
      pattern: { Regex: regex },
      behavior: 'Isolated',
      invert: false,
    });
    const llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const qwen2 = llama3.replace('\\p{N}{1,3}', '\\p{N}');
    const sequence = (...steps: object[]) => ({ pre_tokenizer: { type: 'Sequence', pretokenizers: steps } });
    expect(preTokenizerFromJson({ pre_tokenizer: byteLevel(true) })).toBe('gpt-2');
    expect(preTokenizerFromJson(sequence(split(llama3), byteLevel(false)))).toBe('llama-bpe');
    expect(preTokenizerFromJson(sequence(split(qwen2), byteLevel(false)))).toBe('qwen2');
    expect(preTokenizerFromJson(sequence({ type: 'Digits', individual_digits: true }, byteLevel(true)))).toBe('smollm');
    expect(preTokenizerFromJson(sequence(split('\\d+'), byteLevel(false)))).toBeNull();
    expect(preTokenizerFromJson({ pre_tokenizer: { ...byteLevel(true), add_prefix_space: true } })).toBeNull();
    expect(preTokenizerFromJson({ normalizer: { type: 'NFC' }, pre_tokenizer: byteLevel(true) })).toBeNull();
  });
});

describe('a LoRA adapter as GGUF', () => {
  it("writes llama.cpp's adapter metadata and lora_a / lora_b, B permuted for q and k, alpha as PEFT's scale × r", async () => {
    const { files } = await model(LLAMA);
    const lora = randomLora(LLAMA, ['q_proj', 'k_proj', 'down_proj'], 4, 8, true, 3);
    const adapterFiles = serializeAdapter(
      {
        r: 4,
        loraAlpha: 8,
        loraDropout: 0,
        targetModules: ['q_proj', 'k_proj', 'down_proj'],
        useRslora: true,
        layersToTransform: null,
        baseModelNameOrPath: 'tiny',
      },
      new Map([...lora.modules].map(([k, m]) => [k, { A: Float32Array.from(m.A), B: Float32Array.from(m.B) }])),
    );
    const checkpoint = await loadCheckpoint(reader(files), 'tiny');
    const loaded = await loadAdapter(reader(adapterFiles), 'adapter', checkpoint.config);
    const { metadata, infos, data } = await readBack(
      loraGgufPlan(LLAMA, mergeAdapterOf(loaded), { dtype: 'f16', name: 'my-adapter' }),
    );
    expect(metadata).toMatchObject({
      'general.architecture': 'llama',
      'general.type': 'adapter',
      'general.name': 'my-adapter',
      'adapter.type': 'lora',
      'adapter.lora.alpha': 16, // rsLoRA: scale 8 / √4 = 4, and llama.cpp divides alpha by r = 4
    });
    expect(infos.size).toBe(12);
    const shape = (name: string) => [(infos.get(name)?.shape ?? []).map(Number), infos.get(name)?.dtype];
    const { F16 } = GGMLQuantizationType;
    expect(shape('blk.0.attn_q.weight.lora_a')).toEqual([[64, 4], F16]);
    expect(shape('blk.0.attn_q.weight.lora_b')).toEqual([[4, 64], F16]);
    expect(shape('blk.1.attn_k.weight.lora_b')).toEqual([[4, 32], F16]);
    expect(shape('blk.1.ffn_down.weight.lora_a')).toEqual([[40, 4], F16]);
    const module = (key: string) => lora.modules.get(key) as { A: Float64Array; B: Float64Array };
    expect(data('blk.1.attn_k.weight.lora_a', 4 * 64 * 2)).toEqual(f16Bytes(module('1.k_proj').A));
    expect(data('blk.1.attn_k.weight.lora_b', 4 * 32 * 2)).toEqual(f16Bytes(numpyPermute(module('1.k_proj').B, 2, 4)));
    expect(data('blk.0.attn_q.weight.lora_b', 4 * 64 * 2)).toEqual(f16Bytes(numpyPermute(module('0.q_proj').B, 4, 4)));
    expect(data('blk.0.ffn_down.weight.lora_b', 4 * 64 * 2)).toEqual(f16Bytes(module('0.down_proj').B));
  });
});

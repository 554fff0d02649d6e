/**
 * The peers' workload (`../shared/peers`, described in its README and `src/spec.mjs`) rebuilt in Hone's layout, so the
 * engine trains on bit-identical weights and tokens and its first-step loss must equal the peers' figure.
 *
 * The generator, as the peers describe it: every tensor has its own stream, seeded by the run's seed (1234) XOR the
 * FNV-1a hash of the tensor's name; a stream is xorshift32 (13, 17, 5) whose state starts from the seed through a
 * murmur3-style finalizer (never zero); each 32-bit draw u becomes u · (2·std·√3 / 2³²) − std·√3 in float64, stored
 * as float32: uniform with standard deviation `std`. Frozen matrices have std 0.02, norm weights are 1, LoRA A has
 * std 1/√(3·in) and B std 1e-3 (nonzero, so the first step already trains through A). Token ids are draws of the
 * stream 'tokens' modulo the vocabulary.
 *
 * The peers store matrices as [in, out] (y = x W) and LoRA as A [in, r], B [r, out]; Hone holds Hugging Face's
 * [out, in] and PEFT's A [r, in], B [out, r], so every matrix is transposed on the way.
 *
 * Pure TypeScript (no Node, no DOM): the browser bench page bundles it and generates the model in the page.
 */
import { type ModelConfig, PROJECTIONS, type Projection, projectionShape } from '../../core/model-config';
import { fnv1a } from '../../core/random';
import { everyLayer, type LoraModule, type LoraSettings } from '../../workers/engine/model/lora';

const SEED = 1234;
const BASE_STD = 0.02;
const LORA_B_STD = 1e-3;

/** LoRA and AdamW as the peers train: r 16, alpha 32 on all seven projections; PyTorch's AdamW, no clipping. */
export const PEER_LORA = { r: 16, alpha: 32 } as const;
export const PEER_ADAMW = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 0 };

/** SmolLM2-135M's architecture with `layers` decoder layers: the shape every peer trains. */
export function smolLm2Config(layers: number): ModelConfig {
  return {
    modelType: 'llama',
    vocabSize: 49152,
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: layers,
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
  };
}

/** The peers' names of the projections. */
const PEER_NAME: Record<Projection, string> = {
  q_proj: 'q',
  k_proj: 'k',
  v_proj: 'v',
  o_proj: 'o',
  gate_proj: 'gate',
  up_proj: 'up',
  down_proj: 'down',
};

/** The uint32 stream seeded with `seed` (see the header). */
export function peerStream(seed: number): () => number {
  let x = (seed ^ 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  // xorshift's one fixed point; the finalizer can land on it.
  if (x === 0) x = 0x6d2b79f5;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** The stream of the tensor (or token list) called `name`. */
const streamFor = (name: string) => peerStream((SEED ^ fnv1a(name)) >>> 0);

/** `n` float32 values of the stream `name`, uniform with standard deviation `std` (the same float64 arithmetic). */
export function peerUniform(name: string, n: number, std: number): Float32Array<ArrayBuffer> {
  const next = streamFor(name);
  const scale = (std * Math.sqrt(3) * 2) / 4294967296;
  const low = -std * Math.sqrt(3);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = next() * scale + low;
  return out;
}

/** A row-major [rows, cols] matrix as [cols, rows]. */
function transpose(values: Float32Array, rows: number, cols: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

const PROJECTION_KEY = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)\.weight$/;

/** A base weight under its Hugging Face key, as `GpuWeights.upload` asks for it. */
export function peerTensor(config: ModelConfig, key: string): Float32Array<ArrayBuffer> {
  const d = config.hiddenSize;
  if (key === 'model.embed_tokens.weight') return peerUniform('embed', config.vocabSize * d, BASE_STD);
  if (key.endsWith('norm.weight')) return new Float32Array(d).fill(1);
  const match = PROJECTION_KEY.exec(key);
  const projection = match?.[2] as Projection | undefined;
  if (!match || !projection || !PROJECTIONS.includes(projection)) throw new Error(`the peers' model has no ${key}`);
  const [out, inDim] = projectionShape(config, projection);
  return transpose(peerUniform(`l${match[1]}.${PEER_NAME[projection]}.W`, inDim * out, BASE_STD), inDim, out);
}

/** The adapter the peers train: every projection of every layer, no dropout. */
export function peerLoraSettings(config: ModelConfig): LoraSettings {
  return {
    r: PEER_LORA.r,
    loraAlpha: PEER_LORA.alpha,
    useRslora: false,
    loraDropout: 0,
    modules: everyLayer(config, PROJECTIONS),
  };
}

/** `GpuLora.create`'s init: each module's A ([r, in]) and B ([out, r]) from the peers' [in, r] and [r, out]. */
export function peerLoraInit(m: LoraModule, a: Float32Array, b: Float32Array): void {
  const r = PEER_LORA.r;
  const name = `l${m.layer}.${PEER_NAME[m.projection]}`;
  a.set(transpose(peerUniform(`${name}.A`, m.inDim * r, 1 / Math.sqrt(3 * m.inDim)), m.inDim, r));
  b.set(transpose(peerUniform(`${name}.B`, r * m.outDim, LORA_B_STD), r, m.outDim));
}

/**
 * `batch` windows of `seq` token ids cut from the stream 'tokens', each position's target the id after it. The
 * peers train batch 1: the first window and its targets are theirs exactly; further rows continue the stream.
 */
export function peerTokens(vocabSize: number, batch: number, seq: number): { tokens: number[][]; targets: number[][] } {
  const next = streamFor('tokens');
  const ids = Array.from({ length: batch * seq + 1 }, () => next() % vocabSize);
  const rows = (shift: number) =>
    Array.from({ length: batch }, (_, b) => ids.slice(b * seq + shift, (b + 1) * seq + shift));
  return { tokens: rows(0), targets: rows(1) };
}

/** A product [M, K] · [K, N] the peers time (onnxruntime-web's MatMul and their simple WGSL kernel). */
export interface PeerMatmulShape {
  name: string;
  M: number;
  K: number;
  N: number;
}

/** The step's dominant products at seq 128, as the peers time them (B stored [K, N]). */
export const PEER_MATMUL_SHAPES: PeerMatmulShape[] = [
  { name: 'up/gate 128x576x1536', M: 128, K: 576, N: 1536 },
  { name: 'down 128x1536x576', M: 128, K: 1536, N: 576 },
  { name: 'lm_head 128x576x49152', M: 128, K: 576, N: 49152 },
];

/** The peers' operands of a product: A std 1, B std 0.02, row-major [M, K] and [K, N]. */
export function peerMatmulOperands(s: PeerMatmulShape): { A: Float32Array<ArrayBuffer>; B: Float32Array<ArrayBuffer> } {
  const tag = `${s.M}x${s.K}x${s.N}`;
  return { A: peerUniform(`mm.${tag}.A`, s.M * s.K, 1), B: peerUniform(`mm.${tag}.B`, s.K * s.N, BASE_STD) };
}

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectedTensors, PROJECTIONS, projectionKey } from '../../core/model-config';
import { type LoraModule, loraLayout } from '../../workers/engine/model/lora';
import { PEER_LOSSES, PEER_MATMUL, PEER_TRAINERS } from './peer-figures';
import {
  PEER_LORA,
  PEER_MATMUL_SHAPES,
  peerLoraInit,
  peerLoraSettings,
  peerMatmulOperands,
  peerStream,
  peerTensor,
  peerTokens,
  peerUniform,
  smolLm2Config,
} from './peer-workload';

/** The same stream in 64-bit integer arithmetic: an independent reading of the described algorithm. */
function bigIntStream(seed: number): () => number {
  const M = 0xffffffffn;
  const mul = (a: bigint, b: bigint) => (a * b) & M;
  let x = (BigInt(seed) ^ 0x9e3779b9n) & M;
  x = mul(x ^ (x >> 16n), 0x85ebca6bn);
  x = mul(x ^ (x >> 13n), 0xc2b2ae35n);
  x ^= x >> 16n;
  if (x === 0n) x = 0x6d2b79f5n;
  return () => {
    x = (x ^ (x << 13n)) & M;
    x ^= x >> 17n;
    x = (x ^ (x << 5n)) & M;
    return Number(x);
  };
}

function stats(values: Float32Array) {
  let sum = 0;
  let squares = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    squares += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(squares / values.length - mean * mean), min, max };
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length &&
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

describe('the peers’ generator, rebuilt', () => {
  it('is xorshift32 after a finalizer, as 64-bit integer arithmetic computes it', () => {
    for (const seed of [0, 1, 1234, 0x9e3779b9, 0xffffffff]) {
      const [ours, theirs] = [peerStream(seed), bigIntStream(seed)];
      for (let i = 0; i < 1000; i++) {
        const v = ours();
        expect(v).toBe(theirs());
        expect(v).toBeGreaterThan(0);
        expect(v).toBeLessThan(2 ** 32);
      }
    }
  });

  it('draws uniform values with the asked standard deviation, one stream per name, the same every time', () => {
    const n = 200_000;
    for (const std of [1, 0.02, 1e-3]) {
      const values = peerUniform('some tensor', n, std);
      const s = stats(values);
      const bound = std * Math.sqrt(3);
      expect(s.min).toBeGreaterThanOrEqual(-bound * (1 + 1e-6));
      expect(s.max).toBeLessThanOrEqual(bound * (1 + 1e-6));
      // Both ends reached: uniform over the whole range, not a narrower one.
      expect(s.min).toBeLessThan(-0.999 * bound);
      expect(s.max).toBeGreaterThan(0.999 * bound);
      expect(Math.abs(s.std / std - 1)).toBeLessThan(0.01);
      expect(Math.abs(s.mean / std)).toBeLessThan(0.01);
    }
    expect(sameBits(peerUniform('a', 1000, 1), peerUniform('a', 1000, 1))).toBe(true);
    expect(sameBits(peerUniform('a', 1000, 1), peerUniform('b', 1000, 1))).toBe(false);
  });

  it('gives every tensor SmolLM2-135M needs, in the Hugging Face [out, in] layout, independent of the layer count', () => {
    const config = smolLm2Config(2);
    for (const [key, shape] of expectedTensors(config)) {
      if (key === 'model.embed_tokens.weight') continue; // 28 M values: its stream is checked below
      const values = peerTensor(config, key);
      expect(values.length, key).toBe(shape.reduce((a, b) => a * b, 1));
      if (key.endsWith('norm.weight')) expect(values.every((v) => v === 1)).toBe(true);
    }
    // The peers store q_proj as [in, out]: column o of their matrix is row o of ours.
    const [inDim, out] = [576, 576];
    const theirs = peerUniform('l1.q.W', inDim * out, 0.02);
    const ours = peerTensor(config, projectionKey(1, 'q_proj'));
    for (const [o, i] of [
      [0, 1],
      [5, 300],
      [575, 2],
    ]) {
      expect(ours[o * inDim + i]).toBe(theirs[i * out + o]);
    }
    expect(sameBits(ours, peerTensor(smolLm2Config(30), projectionKey(1, 'q_proj')))).toBe(true);
    expect(() => peerTensor(config, 'lm_head.weight')).toThrow("the peers' model has no lm_head.weight");
  });

  it('initializes LoRA as the peers do: A with std 1/sqrt(3 in), B small and nonzero, transposed to PEFT’s layout', () => {
    const config = smolLm2Config(1);
    const settings = peerLoraSettings(config);
    expect(settings.modules).toHaveLength(PROJECTIONS.length);
    const down = loraLayout(config, settings).modules.find((m) => m.projection === 'down_proj') as LoraModule;
    const a = new Float32Array(PEER_LORA.r * down.inDim);
    const b = new Float32Array(down.outDim * PEER_LORA.r);
    peerLoraInit(down, a, b);
    expect(Math.abs(stats(a).std * Math.sqrt(3 * 1536) - 1)).toBeLessThan(0.02);
    expect(Math.abs(stats(b).std / 1e-3 - 1)).toBeLessThan(0.05);
    // PEFT's A is [r, in]: row 1 holds the peers' column 1.
    expect(a[1 * down.inDim + 7]).toBe(peerUniform('l0.down.A', 1536 * 16, 1 / Math.sqrt(3 * 1536))[7 * 16 + 1]);
  });

  it('cuts the token stream into windows whose targets are the next ids', () => {
    const { tokens, targets } = peerTokens(49152, 3, 16);
    expect(tokens).toHaveLength(3);
    for (let b = 0; b < 3; b++) {
      expect(tokens[b].slice(1)).toEqual(targets[b].slice(0, -1));
      if (b > 0) expect(tokens[b][0]).toBe(targets[b - 1][15]);
      expect(tokens[b].every((id) => Number.isInteger(id) && id >= 0 && id < 49152)).toBe(true);
    }
    // A larger batch continues the stream: its first window is batch 1's.
    expect(peerTokens(49152, 1, 16).tokens[0]).toEqual(tokens[0]);
  });
});

const PEERS = resolve(process.env.HONE_PEERS ?? join(dirname(fileURLToPath(import.meta.url)), '../../../shared/peers'));
const havePeers = existsSync(join(PEERS, 'src/spec.mjs'));

describe.skipIf(!havePeers)(`bit for bit the peers’ own generator (${PEERS})`, () => {
  interface Spec {
    makeConfig(o: { seq: number; layers: number }): unknown;
    weightPlan(cfg: unknown): { frozen: [string, number[], string][]; lora: [string, number[], string][] };
    fillWeight(cfg: unknown, name: string, shape: number[], kind: string): Float32Array;
    tokens(cfg: unknown): { input: Int32Array; target: Int32Array };
  }
  interface Shapes {
    SHAPES: { name: string; M: number; K: number; N: number }[];
    operandA(s: unknown): Float32Array;
    operandB(s: unknown): Float32Array;
  }
  const load = async <T>(file: string) => (await import(pathToFileURL(join(PEERS, file)).href)) as T;

  it('gives the same weights, LoRA initialization and tokens', async () => {
    const spec = await load<Spec>('src/spec.mjs');
    const layers = 2;
    const config = smolLm2Config(layers);
    const cfg = spec.makeConfig({ seq: 128, layers });
    const plan = spec.weightPlan(cfg);
    const peerName = (p: string) => p.replace('_proj', '');
    const frozen = new Map(plan.frozen.map(([name, shape, kind]) => [name, spec.fillWeight(cfg, name, shape, kind)]));
    expect(sameBits(peerTensor(config, 'model.embed_tokens.weight'), frozen.get('embed') as Float32Array)).toBe(true);
    const lora = new Map(plan.lora.map(([name, shape, kind]) => [name, spec.fillWeight(cfg, name, shape, kind)]));
    for (const m of loraLayout(config, peerLoraSettings(config)).modules) {
      const name = `l${m.layer}.${peerName(m.projection)}`;
      const W = peerTensor(config, projectionKey(m.layer, m.projection));
      const theirW = frozen.get(`${name}.W`) as Float32Array;
      const theirA = lora.get(`${name}.A`) as Float32Array;
      const theirB = lora.get(`${name}.B`) as Float32Array;
      const a = new Float32Array(PEER_LORA.r * m.inDim);
      const b = new Float32Array(m.outDim * PEER_LORA.r);
      peerLoraInit(m, a, b);
      // Ours are transposed: compare element by element through the two layouts.
      const transposedEqual = (ours: Float32Array, theirs: Float32Array, rows: number, cols: number) =>
        theirs.every((v, k) => Object.is(v, ours[(k % cols) * rows + Math.floor(k / cols)]));
      expect(transposedEqual(W, theirW, m.inDim, m.outDim), `${name}.W`).toBe(true);
      expect(transposedEqual(a, theirA, m.inDim, PEER_LORA.r), `${name}.A`).toBe(true);
      expect(transposedEqual(b, theirB, PEER_LORA.r, m.outDim), `${name}.B`).toBe(true);
    }
    const theirs = spec.tokens(cfg);
    const ours = peerTokens(49152, 1, 128);
    expect(ours.tokens[0]).toEqual([...theirs.input]);
    expect(ours.targets[0]).toEqual([...theirs.target]);
  });

  it('gives the same MatMul shapes and operands', async () => {
    const shapes = await load<Shapes>('src/matmul-shapes.mjs');
    expect(shapes.SHAPES).toEqual(PEER_MATMUL_SHAPES);
    for (const s of shapes.SHAPES) {
      const { A, B } = peerMatmulOperands(s);
      expect(sameBits(A, shapes.operandA(s)), `${s.name} A`).toBe(true);
      expect(sameBits(B, shapes.operandB(s)), `${s.name} B`).toBe(true);
    }
  });

  it('keeps the peers’ published figures as their latest results hold them', () => {
    const results = JSON.parse(readFileSync(join(PEERS, 'results/latest.json'), 'utf8'));
    interface Run {
      layers: number;
      losses: number[];
      medianStepSeconds: number;
      tokensPerSecond: number;
      gflops: number;
    }
    for (const [layers, losses] of Object.entries(PEER_LOSSES)) {
      const run = results.training['jax-webgpu'].runs.find((r: Run) => r.layers === Number(layers));
      expect(run.losses.map((l: number) => l.toFixed(6))).toEqual(losses.map((l) => l.toFixed(6)));
    }
    for (const t of PEER_TRAINERS) {
      const run = results.training[t.key].runs.find((r: Run) => r.layers === 30);
      expect([run.medianStepSeconds.toFixed(2), run.tokensPerSecond.toFixed(2), run.gflops.toFixed(2)]).toEqual([
        t.secondsPerStep.toFixed(2),
        t.tokensPerSecond.toFixed(2),
        t.gflops.toFixed(2),
      ]);
    }
    PEER_MATMUL.forEach((m, i) => {
      const ort = results.matmul.ort.results[i];
      expect(results.matmul.wgsl.results[i].gflops.toFixed(2)).toBe(m.wgsl.toFixed(2));
      expect(ort.gflops.toFixed(2)).toBe(m.ort.toFixed(2));
      expect(ort.withReadback.gflops.toFixed(2)).toBe(m.ortReadback.toFixed(2));
    });
  });
});

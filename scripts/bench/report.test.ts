import { describe, expect, it } from 'vitest';
import type { BenchResult } from './measure';
import { LOSS_TOLERANCE, PEER_LOSSES, PEER_MATMUL, PEER_TRAINERS } from './peer-figures';
import { PEER_MATMUL_SHAPES } from './peer-workload';
import { failures, targets } from './report';

/** A run of the peers' 30-layer workload with the given first loss and step time. */
function run(over: { firstLoss?: number; seconds?: number; seq?: number; batch?: number; peak?: number }): BenchResult {
  const seconds = over.seconds ?? 10;
  return {
    environment: 'test',
    adapter: {
      vendor: 'google',
      architecture: 'swiftshader',
      device: '',
      description: '',
      isFallbackAdapter: true,
    } as BenchResult['adapter'],
    options: {
      shape: 'smollm2-135m',
      layers: 30,
      seq: over.seq ?? 128,
      batch: over.batch ?? 1,
      steps: 2,
      f16: false,
      base: null,
      recompute: false,
      tune: undefined,
      profile: false,
      matmul: true,
      step: true,
      decode: 0,
      decodePrompt: 8,
      allocateOnly: false,
      gpuKernels: false,
    },
    usefulGflop: 76,
    matmul: PEER_MATMUL_SHAPES.map((s, i) => ({
      shape: s.name,
      tile: 'registers',
      seconds: 1,
      gflops: 3 * Math.max(PEER_MATMUL[i].ort, PEER_MATMUL[i].ortReadback) * (i + 1), // 3x, 6x, 9x ORT
      maxRelativeError: 1e-7,
    })),
    stepMatmul: 'registers',
    step: {
      secondsPerStep: seconds,
      stepSeconds: [seconds, seconds, seconds],
      losses: [over.firstLoss ?? PEER_LOSSES[30][0], 10.4, 10.0],
      dispatchesPerStep: 1,
      loraParams: 1,
      tunedShapes: 0,
      profile: [],
    },
    decode: null,
    memory: { peakBytes: over.peak ?? 1e9, atPeak: {} },
    estimate: { weights: 0, activations: 0, adapter: 0, total: 0, largestBinding: 0 },
  };
}

describe('the bench report', () => {
  it('fails a run whose first loss is off the peers’ by more than the tolerance, or whose matmul is wrong', () => {
    const peers = PEER_LOSSES[30][0];
    expect(failures(run({ firstLoss: peers + 0.5 * LOSS_TOLERANCE }))).toEqual([]);
    expect(failures(run({ firstLoss: peers - 2 * LOSS_TOLERANCE }))[0]).toMatch(
      /first loss .* differs from the peers'/,
    );
    expect(failures(run({ firstLoss: Number.NaN }))).toHaveLength(1);
    // No peers' figure for batch 2: nothing to compare with.
    expect(failures(run({ firstLoss: 3, batch: 2 }))).toEqual([]);
    const wrong = run({});
    wrong.matmul[1].maxRelativeError = 0.01;
    expect(failures(wrong)).toEqual([expect.stringContaining('down 128x1536x576')]);
  });

  it('turns each target into a ratio: tokens/s against jax-js and tfjs, matmul against ORT per shape, memory', () => {
    const jax = PEER_TRAINERS.find((t) => t.key === 'jax-webgpu')?.tokensPerSecond ?? 0;
    // Exactly twice jax-js's tokens/s meets the 2x target.
    const t = targets(run({ seconds: 128 / (2 * jax) }));
    expect(t[0]).toMatchObject({ ratio: expect.closeTo(2, 9), needed: 2, met: true });
    expect(t[1].met).toBe(false); // 2 × 2.19 tokens/s is not 10 × 0.63
    expect(t.slice(2).map((x) => [x.ratio, x.met])).toEqual([
      [expect.closeTo(3, 9), false],
      [expect.closeTo(6, 9), true],
      [expect.closeTo(9, 9), true],
    ]);
    const memory = (peak: number) =>
      targets(run({ seq: 512, batch: 4, peak })).find((x) => x.target.includes('1.5 GB'));
    expect(memory(1.2e9)?.met).toBe(true);
    expect(memory(1.6e9)?.met).toBe(false);
    expect(targets(run({})).some((x) => x.target.includes('1.5 GB'))).toBe(false);
  });

  it('compares with the peers only on their adapter (SwiftShader); decoding and memory on any', () => {
    const gpu = run({ seq: 512, batch: 4 });
    gpu.adapter = { ...gpu.adapter, vendor: 'nvidia', architecture: '', isFallbackAdapter: false };
    gpu.decode = { tokensPerSecond: 60, memoryBoundTokensPerSecond: 100 } as BenchResult['decode'];
    expect(targets(gpu).map((x) => x.target)).toEqual([
      'decode vs memory-bound limit',
      'peak GPU memory under 1.5 GB at seq 512, batch 4',
    ]);
  });
});

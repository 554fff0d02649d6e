import { describe, expect, it } from 'vitest';
import { sampleToken } from '../../../core/generation/sampling';
import { mulberry32 } from '../../../core/random';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readUint32, uploadBuffer } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { DRAWS_HEADER, type DrawSettings, drawsFor, SampleKernel, TOP_K_MAX } from './sample';

const gpu = setupTestGpu();

/** The CPU twin: core's draw (no repetition penalty), its generator giving the uniform u. */
const cpuDraw = (logits: Float32Array, temperature: number, u: number, topK = 0, topP = 1) =>
  sampleToken(logits, [], { temperature, topK, topP, repetitionPenalty: 1 }, () => u);

/** Draws a token per row on the GPU for each set of uniforms (rows with a forced token take it). */
async function drawAll(
  logits: Float32Array,
  rows: number,
  settings: number | DrawSettings,
  uniforms: number[][],
  forcedIds = new Int32Array(rows).fill(-1),
) {
  const s = typeof settings === 'number' ? { temperature: settings, topK: 0, topP: 1 } : settings;
  const { device } = gpu();
  const V = logits.length / rows;
  const kernel = new SampleKernel(device);
  const bl = uploadBuffer(device, logits);
  const draws = createStorageBuffer(device, (DRAWS_HEADER + rows) * 4);
  const forced = uploadBuffer(device, forcedIds);
  const ids = uploadBuffer(device, new Uint32Array(rows));
  const op = kernel.op({ logits: bl, draws, forced, ids, rows, V });
  const got: number[][] = [];
  for (const us of uniforms) {
    device.queue.writeBuffer(draws, 0, drawsFor(s, us));
    submitOps(device, [op]);
    got.push([...(await readUint32(device, ids))]);
  }
  return got;
}

describe('GPU sampling against the CPU draw', () => {
  it('draws what the CPU draws from the same uniform, row by row (awkward vocabulary, peaked and flat rows)', async () => {
    const rows = 3;
    const V = 1001;
    const next = mulberry32(5);
    // Row 0 flat-ish, row 1 peaked on a few tokens, row 2 with ties and very negative logits.
    const logits = Float32Array.from({ length: rows * V }, (_, i) => {
      const [r, j] = [Math.floor(i / V), i % V];
      if (r === 0) return next() * 2;
      if (r === 1) return j % 97 === 3 ? 8 + next() : next() - 2;
      return j % 2 === 0 ? -1e4 : Math.floor(next() * 3);
    });
    const random = mulberry32(9);
    const uniforms = Array.from({ length: 60 }, () => Array.from({ length: rows }, () => random()));
    for (const temperature of [1, 0.7]) {
      const got = await drawAll(logits, rows, temperature, uniforms);
      let agree = 0;
      uniforms.forEach((us, n) => {
        us.forEach((u, r) => {
          if (got[n][r] === cpuDraw(logits.subarray(r * V, (r + 1) * V), temperature, u)) agree++;
        });
      });
      // float32 sums against float64 ones may split a uniform that lands on a boundary differently, rarely.
      expect(agree).toBeGreaterThanOrEqual(rows * uniforms.length - 2);
    }
  });

  it('keeps the top k (ties to the lower index) and their nucleus, as the CPU cuts them', async () => {
    const rows = 2;
    const V = 1001;
    const next = mulberry32(17);
    // Row 0 a spread of values; row 1 few distinct values, so the k-th largest has many ties.
    const logits = Float32Array.from({ length: rows * V }, (_, i) =>
      i < V ? 4 * next() - 2 : Math.floor(next() * 6) / 2,
    );
    const random = mulberry32(23);
    const uniforms = Array.from({ length: 40 }, () => Array.from({ length: rows }, () => random()));
    for (const [topK, topP, temperature] of [
      [1, 1, 1],
      [5, 1, 0.7],
      [50, 0.95, 0.7],
      [TOP_K_MAX, 0.5, 1.3],
    ]) {
      const got = await drawAll(logits, rows, { temperature, topK, topP }, uniforms);
      let agree = 0;
      for (const [n, us] of uniforms.entries()) {
        for (const [r, u] of us.entries()) {
          if (got[n][r] === cpuDraw(logits.subarray(r * V, (r + 1) * V), temperature, u, topK, topP)) agree++;
        }
      }
      expect(agree, `top-k ${topK}, top-p ${topP}`).toBeGreaterThanOrEqual(rows * uniforms.length - 1);
    }
  });

  it('is greedy at temperature 0: the first index of the largest logit', async () => {
    const logits = Float32Array.from([0, 3, 1, 3, -2, 0.5, 7, 7, 2, 1]);
    const got = await drawAll(logits, 2, 0, [[0.3, 0.9]]);
    expect(got[0]).toEqual([1, 1]);
  });

  it('gives a row its forced token (a prompt token still to feed) instead of a draw', async () => {
    const logits = Float32Array.from([0, 3, 1, 3, -2, 0.5, 7, 7, 2, 1, 9, 0]);
    for (const temperature of [0, 1]) {
      const got = await drawAll(logits, 3, temperature, [[0.3, 0.5, 0.9]], Int32Array.of(-1, 11, -1));
      expect(got[0].slice(1, 2)).toEqual([11]);
      expect(got[0][2]).toBe(cpuDraw(logits.subarray(8, 12), temperature, 0.9));
    }
  });

  it('follows the softmax: frequencies over many uniforms match the probabilities', async () => {
    const logits = Float32Array.from([0, 1, 2, -1, 0.5]);
    const random = mulberry32(3);
    const uniforms = Array.from({ length: 2000 }, () => [random()]);
    const got = await drawAll(logits, 1, 1, uniforms);
    const counts = new Array(5).fill(0);
    for (const [id] of got) counts[id]++;
    const weights = [...logits].map((l) => Math.exp(l));
    const total = weights.reduce((a, b) => a + b, 0);
    for (const [i, c] of counts.entries()) expect(Math.abs(c / 2000 - weights[i] / total)).toBeLessThan(0.03);
  });
});

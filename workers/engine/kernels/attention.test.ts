import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { AttentionKernels, type AttentionLayout, type AttentionShape } from './attention';
import { type AttentionDims, attentionBackwardCpu, attentionForwardCpu } from './attention.cpu';

const gpu = setupTestGpu();

const dimsOf = (s: AttentionShape): AttentionDims => ({
  B: s.batch,
  T: s.seq,
  H: s.heads,
  KV: s.kvHeads,
  hd: s.headDim,
  scale: s.scale,
  window: s.window,
});

describe('attention CPU twin', () => {
  for (const [name, d] of [
    ['with grouped kv heads', { B: 2, T: 4, H: 4, KV: 2, hd: 3 }],
    ["within a sliding window of 2, Gemma's score scale", { B: 2, T: 5, H: 4, KV: 2, hd: 3, scale: 0.4, window: 2 }],
  ] as [string, AttentionDims][]) {
    it(`has the gradient of Σ c · out, ${name}`, () => {
      const [nq, nk] = [d.B * d.T * d.H * d.hd, d.B * d.T * d.KV * d.hd];
      const q = Float64Array.from(randomUniform(nq, 1, -2, 2));
      const k = Float64Array.from(randomUniform(nk, 2, -2, 2));
      const v = Float64Array.from(randomUniform(nk, 3));
      const c = Float64Array.from(randomUniform(nq, 4));
      const loss = () => attentionForwardCpu(q, k, v, d).out.reduce((acc, o, i) => acc + o * c[i], 0);
      const { probs, lse } = attentionForwardCpu(q, k, v, d);
      // lse is the log of each row's softmax denominator: p = exp(s - lse) for the first key, whose score is known.
      const s00 = (q[0] * k[0] + q[1] * k[1] + q[2] * k[2]) * (d.scale ?? 1 / Math.sqrt(d.hd));
      expect(Math.exp(s00 - lse[0])).toBeCloseTo(probs[0], 12);
      const { dq, dk, dv } = attentionBackwardCpu(c, q, k, v, probs, d);
      for (const [x, dx] of [
        [q, dq],
        [k, dk],
        [v, dv],
      ]) {
        for (let i = 0; i < x.length; i++) expect(dx[i]).toBeCloseTo(finiteDifference(loss, x, i), 7);
      }
      // Outside the window a query gives its key no weight: row t = 3 of head 0 sees keys 2 and 3 only.
      if (d.window) expect(Array.from(probs.subarray(3 * d.T, 3 * d.T + 2))).toEqual([0, 0]);
    });
  }
});

describe('attention kernels against the CPU twin', () => {
  const rows = (block: number): AttentionLayout => ({ kind: 'rows', block });
  const tiles = (tile: number): AttentionLayout => ({ kind: 'tiles', tile });
  const cases: [string, AttentionShape, AttentionLayout][] = [
    // Rows read as vec4, three query heads per kv head, 37 positions leaving most of a workgroup idle.
    ['grouped heads, vec4 rows', { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 12 }, rows(1)],
    // Four rows per invocation, the last block cut short.
    ['grouped heads, blocks of 4', { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 12 }, rows(4)],
    // A head dimension that is no multiple of 4 (scalar rows), past one workgroup of positions.
    ['scalar rows, two workgroups', { batch: 1, seq: 70, heads: 3, kvHeads: 3, headDim: 6 }, rows(1)],
    ['scalar rows, blocks of 3 over two workgroups', { batch: 1, seq: 200, heads: 2, kvHeads: 1, headDim: 6 }, rows(3)],
    ['one position', { batch: 1, seq: 1, heads: 2, kvHeads: 1, headDim: 8 }, rows(1)],
    ['one position, blocks of 4', { batch: 1, seq: 1, heads: 2, kvHeads: 1, headDim: 8 }, rows(4)],
    ['hone-tiny head size, blocks of 4', { batch: 1, seq: 20, heads: 3, kvHeads: 1, headDim: 32 }, rows(4)],
    // Block 4 asked, 2 compiled: the unrolled-code budget (64 / 4 = 16 vectors a row).
    ['SmolLM2 head size', { batch: 1, seq: 20, heads: 3, kvHeads: 1, headDim: 64 }, rows(4)],
    // Tiles of 8 rows (8 lanes a row): 37 positions end mid-tile, 3 vectors a row leave lanes without a slice.
    ['tiles of 8, grouped heads', { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 12 }, tiles(8)],
    // Tiles of 16 rows (4 lanes a row, 4 scores each); scalar rows of 6, lanes owning 2 or 1 of them.
    ['tiles of 16, scalar rows', { batch: 1, seq: 70, heads: 3, kvHeads: 3, headDim: 6 }, tiles(16)],
    ['tiles, one position', { batch: 1, seq: 1, heads: 2, kvHeads: 1, headDim: 8 }, tiles(8)],
    // Vectors a row a multiple of the lanes (no guard), several tiles.
    ['tiles of 8, whole vectors a lane', { batch: 1, seq: 29, heads: 3, kvHeads: 1, headDim: 32 }, tiles(8)],
    // Sliding windows (Gemma's local layers) and another score scale: windows shorter than a block, a tile, a
    // workgroup of rows, and windows reaching across several tiles and past a workgroup.
    ['window 3, rows', { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 12, window: 3, scale: 0.2 }, rows(1)],
    ['window 5, blocks of 4', { batch: 1, seq: 70, heads: 3, kvHeads: 3, headDim: 6, window: 5 }, rows(4)],
    ['window 70, blocks of 3', { batch: 1, seq: 200, heads: 2, kvHeads: 1, headDim: 6, window: 70 }, rows(3)],
    ['window 3, tiles of 8', { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 12, window: 3, scale: 0.2 }, tiles(8)],
    ['window 20, tiles of 16', { batch: 1, seq: 70, heads: 3, kvHeads: 3, headDim: 6, window: 20 }, tiles(16)],
    ['window 9, tiles of 8', { batch: 1, seq: 29, heads: 3, kvHeads: 1, headDim: 32, window: 9 }, tiles(8)],
  ];
  for (const [name, s, layout] of cases) {
    it(name, async () => {
      const { device } = gpu();
      const kernels = new AttentionKernels(device, layout);
      const N = s.batch * s.seq;
      const [nq, nk, nStats] = [N * s.heads * s.headDim, N * s.kvHeads * s.headDim, s.batch * s.heads * s.seq];
      // Wide score ranges make the running maximum move often, which the online softmax must rescale through.
      const q = randomUniform(nq, s.seq, -3, 3);
      const k = randomUniform(nk, s.seq + 1, -3, 3);
      const v = randomUniform(nk, s.seq + 2);
      const dout = randomUniform(nq, s.seq + 3);
      const d = dimsOf(s);
      const cpu = attentionForwardCpu(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), d);
      const grads = attentionBackwardCpu(
        Float64Array.from(dout),
        Float64Array.from(q),
        Float64Array.from(k),
        Float64Array.from(v),
        cpu.probs,
        d,
      );

      const [bq, bk, bv, bdout] = [q, k, v, dout].map((x) => uploadBuffer(device, x));
      const [out, lse, delta] = [nq, nStats, nStats].map((n) => createStorageBuffer(device, n * 4));
      const [dq, dk, dv] = [nq, nk, nk].map((n) => createStorageBuffer(device, n * 4));
      const outGpu = await runAndRead(device, [kernels.forwardOp({ q: bq, k: bk, v: bv, out, lse }, s)], out);
      expect(maxRelativeError(outGpu, cpu.out)).toBeLessThan(1e-5);
      expect(maxRelativeError(await readFloat32(device, lse), cpu.lse)).toBeLessThan(1e-5);

      device.pushErrorScope('validation');
      submitOps(device, kernels.backwardOps({ q: bq, k: bk, v: bv, out, dout: bdout, lse }, { delta, dq, dk, dv }, s));
      expect(await device.popErrorScope()).toBeNull();
      expect(maxRelativeError(await readFloat32(device, dq), grads.dq)).toBeLessThan(1e-4);
      expect(maxRelativeError(await readFloat32(device, dk), grads.dk)).toBeLessThan(1e-4);
      expect(maxRelativeError(await readFloat32(device, dv), grads.dv)).toBeLessThan(1e-4);
      // delta_i = dout_i · out_i, per (batch row, head, position).
      const expectedDelta = new Float64Array(nStats);
      for (let b = 0; b < s.batch; b++)
        for (let h = 0; h < s.heads; h++)
          for (let t = 0; t < s.seq; t++) {
            const row = ((b * s.seq + t) * s.heads + h) * s.headDim;
            let dot = 0;
            for (let i = 0; i < s.headDim; i++) dot += dout[row + i] * cpu.out[row + i];
            expectedDelta[(b * s.heads + h) * s.seq + t] = dot;
          }
      expect(maxRelativeError(await readFloat32(device, delta), expectedDelta)).toBeLessThan(1e-5);
    });
  }
});

import { describe, expect, it } from 'vitest';
import { packHalves, roundToHalf } from '../../../core/float16';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { uploadBuffer } from '../gpu/buffers';
import { GemvKernels } from './gemv';
import { matmulCpu } from './matmul.cpu';
import { dequantize, QUANT_FORMATS, quantize } from './quant';
import { rmsnormForwardCpu } from './rmsnorm.cpu';
import { gegluCpu, swigluCpu } from './swiglu.cpu';

const gpu = setupTestGpu();

describe('gemv (decoding one token)', () => {
  for (const [N, K, half, offsetA, offsetB, layout] of [
    [7, 13, false, 3, 0, 'cooperative'],
    [37, 130, false, 3, 5, 'cooperative'],
    [261, 576, true, 3, 0, 'cooperative'],
    [5, 34, true, 3, 68, 'cooperative'],
    [7, 13, false, 3, 0, 'row'],
    [130, 37, false, 3, 5, 'row'],
    [5, 34, true, 3, 68, 'row'],
    // Whole vectors (4 floats, 8 halves): the row layout's vector kernels, with rows past N in the last group.
    [37, 132, false, 4, 8, 'row'],
    [261, 576, true, 0, 0, 'row'],
    [6, 40, true, 8, 16, 'row'],
  ] as const) {
    const shape = { N, K, offsetA, offsetB, offsetC: 2, alpha: 0.5, beta: 1 };
    const kernel = layout === 'row' && GemvKernels.vectorFits(shape, half) ? 'row, vectors' : layout;
    it(`matches the matmul twin's x·Wᵀ for M = 1: ${kernel}, N ${N}, K ${K}, ${half ? 'fp16' : 'fp32'} W, offsets ${offsetA}, ${offsetB}`, async () => {
      const { device } = gpu();
      const k = new GemvKernels(device, layout);
      const x = randomUniform(offsetA + K, 1);
      // fp16 weights hold values fp16 can represent, so the twin sees exactly what the GPU unpacks.
      const raw = randomUniform(offsetB + N * K, 2);
      const w = half ? Float32Array.from(roundToHalf(raw)) : raw;
      const prior = randomUniform(2 + N, 3);
      const [bx, bw] = [uploadBuffer(device, x), uploadBuffer(device, half ? packHalves(w) : w)];
      // Plain, then with a low-rank term (LoRA's s B (A x) fused in): L [3] at offset 2, R [N, 3] at offset 5.
      const low = {
        rank: 3,
        offsetL: 2,
        offsetR: 5,
        scale: 1.5,
        l: randomUniform(5, 4),
        r: randomUniform(5 + 3 * N, 5),
      };
      for (const lowRank of [undefined, low]) {
        const y = uploadBuffer(device, prior);
        const fused = lowRank && { ...lowRank, l: uploadBuffer(device, lowRank.l), r: uploadBuffer(device, lowRank.r) };
        const got = await runAndRead(device, [k.op({ x: bx, w: bw, y, shape, halfW: half, lowRank: fused })], y);
        const expected = Float64Array.from(prior);
        matmulCpu(x, w, expected, { M: 1, ...shape }, { transA: false, transB: true }, lowRank);
        expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
      }
    });
  }

  for (const [layout, half, K] of [
    ['cooperative', false, 13],
    ['cooperative', true, 34],
    ['row', false, 13],
    ['row', true, 40],
  ] as const) {
    const kernel = layout === 'row' && K % (half ? 8 : 4) === 0 ? 'row, vectors' : layout;
    it(`reads W's rows in segments from their own offsets (LoRA A of q, k and v as one product): ${kernel}, ${half ? 'fp16' : 'fp32'}`, async () => {
      const { device } = gpu();
      const rows = 5;
      // Three segments of 5 rows, out of order in W: at 8K, 0 and 24 + 3K (elements; whole vectors where K is).
      const offsets = [8 * K, 0, 24 + 3 * K];
      const shape = { N: 3 * rows, K, offsetB: offsets[0], segments: { rows, offsets: offsets.slice(1) } };
      const x = randomUniform(K, 1);
      const raw = randomUniform(24 + 16 * K, 2);
      const w = half ? Float32Array.from(roundToHalf(raw)) : raw;
      const [bx, bw, y] = [
        uploadBuffer(device, x),
        uploadBuffer(device, half ? packHalves(w) : w),
        uploadBuffer(device, new Float32Array(3 * rows)),
      ];
      const got = await runAndRead(
        device,
        [new GemvKernels(device, layout).op({ x: bx, w: bw, y, shape, halfW: half })],
        y,
      );
      const expected = offsets.flatMap((offset) => {
        const part = new Float64Array(rows);
        matmulCpu(x, w, part, { M: 1, N: rows, K, offsetB: offset }, { transA: false, transB: true });
        return [...part];
      });
      expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
      expect(() =>
        new GemvKernels(device, layout).op({ x: bx, w: bw, y, shape: { ...shape, N: 14 }, halfW: half }),
      ).toThrow("a gemv's 14 rows cannot be 3 segments of 5");
    });
  }

  for (const [layout, half, K] of [
    ['cooperative', true, 130],
    ['row', false, 37],
    ['row', true, 40],
  ] as const) {
    it(`adds a bias to each output as it stores (Qwen2's q, k and v): ${layout}, K ${K}, ${half ? 'fp16' : 'fp32'}`, async () => {
      const { device } = gpu();
      const N = 13;
      const shape = { N, K, offsetC: 1, alpha: 0.5, beta: 1 };
      const x = randomUniform(K, 1);
      const raw = randomUniform(N * K, 2);
      const w = half ? Float32Array.from(roundToHalf(raw)) : raw;
      const bias = randomUniform(N, 3);
      const prior = randomUniform(1 + N, 4);
      const expected = Float64Array.from(prior);
      matmulCpu(x, w, expected, { M: 1, ...shape }, { transA: false, transB: true });
      for (let n = 0; n < N; n++) expected[1 + n] += shape.alpha * bias[n];
      const [bx, bw, bb, y] = [x, half ? packHalves(w) : w, bias, prior].map((a) => uploadBuffer(device, a));
      const op = new GemvKernels(device, layout).op({ x: bx, w: bw, y, shape, halfW: half, bias: bb });
      expect(maxRelativeError(await runAndRead(device, [op], y), expected)).toBeLessThan(1e-5);
    });
  }

  it('refuses fp16 pairs that straddle words', () => {
    const { device } = gpu();
    const b = uploadBuffer(device, new Float32Array(4));
    expect(() => new GemvKernels(device).op({ x: b, w: b, y: b, shape: { N: 1, K: 3 }, halfW: true })).toThrow(
      'fp16 gemv needs an even K',
    );
  });
});

describe('gemv over a quantized W (decoding from an 8- or 4-bit base)', () => {
  for (const format of QUANT_FORMATS) {
    for (const layout of ['cooperative', 'row'] as const) {
      it(`${format}, ${layout}: W x with a low-rank term, through an RMSNorm, and gated (SiLU, GELU)`, async () => {
        const { device } = gpu();
        const k = new GemvKernels(device, layout);
        // N 37 rows of K 192 (three 64-weight groups), x at an offset.
        const [N, K] = [37, 192];
        const x = randomUniform(3 + K, 1);
        const [w, u] = [2, 3].map((seed) => quantize(randomUniform(N * K, seed, -0.2, 0.2), N, K, format));
        const [wd, ud] = [w, u].map((m) => dequantize(m, N, K, format));
        const g = randomUniform(K, 4, 0.5, 1.5);
        const low = { rank: 3, offsetL: 0, offsetR: 0, scale: 1.5, l: randomUniform(3, 5), r: randomUniform(3 * N, 6) };
        const [bx, bw, bu, bg, bl, br] = [x, w, u, g, low.l, low.r].map((a) => uploadBuffer(device, a));
        const shape = { N, K, offsetA: 3, alpha: 0.5 };
        const y = uploadBuffer(device, new Float32Array(N).fill(Number.NaN));
        const got = await runAndRead(
          device,
          [k.op({ x: bx, w: bw, y, shape, quantW: format, lowRank: { ...low, l: bl, r: br } })],
          y,
        );
        const expected = new Float64Array(N);
        matmulCpu(x, wd, expected, { M: 1, ...shape }, { transA: false, transB: true }, low);
        expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);

        // Gated, x read through RMSNorm(x) ⊙ g.
        const xs = x.subarray(3);
        const normed = Float32Array.from(rmsnormForwardCpu(xs, g, 1, K, 1e-5).y);
        const projected = (m: Float32Array) => {
          const out = new Float64Array(N);
          matmulCpu(normed, m, out, { M: 1, N, K }, { transA: false, transB: true });
          return out;
        };
        for (const activation of ['silu', 'gelu'] as const) {
          const gate = activation === 'silu' ? swigluCpu : gegluCpu;
          const io = { x: uploadBuffer(device, xs), w: bw, u: bu, y, shape: { N, K }, quantW: format };
          const op = k.gatedOp({ ...io, norm: { weight: bg, eps: 1e-5 }, activation });
          expect(maxRelativeError(await runAndRead(device, [op], y), gate(projected(wd), projected(ud)))).toBeLessThan(
            1e-5,
          );
        }
      });
    }
  }

  it("reads a q8 W from a whole row's offset (a slice of the LM head's vocabulary)", async () => {
    const { device } = gpu();
    const [rows, K, first, N] = [30, 64, 11, 13];
    const words = quantize(randomUniform(rows * K, 2, -0.2, 0.2), rows, K, 'q8');
    const part = dequantize(words, rows, K, 'q8').subarray(first * K, (first + N) * K);
    const x = randomUniform(K, 1);
    for (const layout of ['cooperative', 'row'] as const) {
      const y = uploadBuffer(device, new Float32Array(N));
      const shape = { N, K, offsetB: first * K };
      const op = new GemvKernels(device, layout).op({
        x: uploadBuffer(device, x),
        w: uploadBuffer(device, words),
        y,
        shape,
        quantW: 'q8',
      });
      const expected = new Float64Array(N);
      matmulCpu(x, part, expected, { M: 1, N, K }, { transA: false, transB: true });
      expect(maxRelativeError(await runAndRead(device, [op], y), expected)).toBeLessThan(1e-5);
    }
  });

  it('refuses segments or offsets into a quantized W, and rows of part groups', () => {
    const { device } = gpu();
    const k = new GemvKernels(device, 'row');
    const b = uploadBuffer(device, new Float32Array(64));
    const io = { x: b, w: b, y: b, quantW: 'q4' as const };
    expect(() => k.op({ ...io, shape: { N: 2, K: 64, offsetB: 64 } })).toThrow(/a q4 gemv reads whole matrices/);
    expect(() => k.op({ ...io, quantW: 'q8', shape: { N: 2, K: 64, offsetB: 32 } })).toThrow(
      /a q8 gemv reads whole matrices \(from a whole row/,
    );
    expect(() => k.op({ ...io, shape: { N: 2, K: 48 } })).toThrow(/whole groups \(K 48\)/);
  });
});

describe("gated gemv (SwiGLU's gate and up products and the gate in one dispatch)", () => {
  for (const [N, K, half, layout] of [
    [37, 132, false, 'row'],
    [37, 130, false, 'row'],
    [6, 40, true, 'row'],
    [261, 576, true, 'cooperative'],
    [7, 13, false, 'cooperative'],
  ] as const) {
    const kind = layout === 'row' && GemvKernels.vectorFits({ N, K }, half) ? 'row, vectors' : layout;
    it(`matches silu(W x) ⊙ (U x) with LoRA terms on both, one or neither: ${kind}, N ${N}, K ${K}, ${half ? 'fp16' : 'fp32'}`, async () => {
      const { device } = gpu();
      const k = new GemvKernels(device, layout);
      const x = randomUniform(K, 1);
      const [w, u] = [2, 3].map((seed) => {
        const raw = randomUniform(N * K, seed);
        return half ? Float32Array.from(roundToHalf(raw)) : raw;
      });
      // One L buffer (both modules' x A^T, rank 3 each) and one R buffer (both B matrices), as decoding holds them.
      const l = randomUniform(6, 4);
      const r = randomUniform(2 + 6 * N, 5);
      const gate = { rank: 3, offsetL: 0, offsetR: 2, scale: 1.5 };
      const up = { rank: 3, offsetL: 3, offsetR: 2 + 3 * N, scale: 0.5 };
      const [bx, bw, bu, bl, br] = [x, half ? packHalves(w) : w, half ? packHalves(u) : u, l, r].map((a) =>
        uploadBuffer(device, a),
      );
      for (const terms of [{}, { w: gate, u: up }, { u: up }] as const) {
        const projected = (m: Float32Array, term?: typeof gate) => {
          const out = new Float64Array(N);
          matmulCpu(x, m, out, { M: 1, N, K }, { transA: false, transB: true }, term && { ...term, l, r });
          return out;
        };
        const expected = swigluCpu(projected(w, 'w' in terms ? terms.w : undefined), projected(u, terms.u));
        const onGpu = (term?: typeof gate) => term && { ...term, l: bl, r: br };
        const y = uploadBuffer(device, new Float32Array(N).fill(Number.NaN));
        const op = k.gatedOp({
          x: bx,
          w: bw,
          u: bu,
          y,
          shape: { N, K },
          halfW: half,
          lowRank: { w: onGpu('w' in terms ? terms.w : undefined), u: onGpu(terms.u) },
        });
        expect(maxRelativeError(await runAndRead(device, [op], y), expected)).toBeLessThan(1e-5);
      }
    });
  }
});

describe('gemv through an RMSNorm of x (the norm before a projection, fused)', () => {
  for (const [N, K, half, layout] of [
    [37, 130, false, 'cooperative'],
    [261, 576, true, 'cooperative'],
    [37, 13, false, 'row'],
    [6, 34, true, 'row'],
    [37, 132, false, 'row'],
    [6, 40, true, 'row'],
  ] as const) {
    const kind = layout === 'row' && GemvKernels.vectorFits({ N, K }, half) ? 'row, vectors' : layout;
    it(`reads rmsnorm(x) ⊙ g, plain and gated: ${kind}, N ${N}, K ${K}, ${half ? 'fp16' : 'fp32'}`, async () => {
      const { device } = gpu();
      const k = new GemvKernels(device, layout);
      const eps = 1e-5;
      // A residual stream of some size, far from unit RMS, so a missing or wrong scale shows.
      const x = randomUniform(K, 1).map((v) => 7 * v + 0.5);
      const g = randomUniform(K, 6).map((v) => 1 + v);
      const normed = rmsnormForwardCpu(x, g, 1, K, eps).y;
      const [w, u] = [2, 3].map((seed) => {
        const raw = randomUniform(N * K, seed);
        return half ? Float32Array.from(roundToHalf(raw)) : raw;
      });
      const low = {
        rank: 2,
        offsetL: 0,
        offsetR: 1,
        scale: 0.5,
        l: randomUniform(2, 4),
        r: randomUniform(1 + 2 * N, 5),
      };
      const [bx, bw, bu, bl, br] = [x, half ? packHalves(w) : w, half ? packHalves(u) : u, low.l, low.r].map((a) =>
        uploadBuffer(device, a),
      );
      const norm = { weight: uploadBuffer(device, g), eps };
      const projected = (m: Float32Array, term?: typeof low) => {
        const out = new Float64Array(N);
        matmulCpu(normed, m, out, { M: 1, N, K }, { transA: false, transB: true }, term);
        return out;
      };
      const y = uploadBuffer(device, new Float32Array(N));
      const term = { ...low, l: bl, r: br };
      const plain = await runAndRead(
        device,
        [k.op({ x: bx, w: bw, y, shape: { N, K }, halfW: half, lowRank: term, norm })],
        y,
      );
      expect(maxRelativeError(plain, projected(w, low))).toBeLessThan(1e-5);
      const gated = await runAndRead(
        device,
        [k.gatedOp({ x: bx, w: bw, u: bu, y, shape: { N, K }, halfW: half, lowRank: { u: term }, norm })],
        y,
      );
      expect(maxRelativeError(gated, swigluCpu(projected(w), projected(u, low)))).toBeLessThan(1e-5);
      // Gemma's GeGLU: the tanh GELU of the gate.
      const gelu = await runAndRead(
        device,
        [
          k.gatedOp({
            ...{ x: bx, w: bw, u: bu, y, shape: { N, K }, halfW: half },
            ...{ lowRank: { u: term }, norm, activation: 'gelu' },
          }),
        ],
        y,
      );
      expect(maxRelativeError(gelu, gegluCpu(projected(w), projected(u, low)))).toBeLessThan(1e-5);
    });
  }
});

describe('a set of gemvs (q, k and v of one token in one dispatch)', () => {
  // With biases, two products: three with their biases and low-rank terms bind more buffers than SwiftShader's 12.
  for (const [K, half, withBias, widths] of [
    [130, false, true, [37, 6]],
    [576, true, false, [37, 6, 9]],
  ] as const) {
    it(`each product into its own y, through one RMSNorm, low-rank terms${withBias ? ', biases' : ''}: K ${K}, ${half ? 'fp16' : 'fp32'}`, async () => {
      const { device } = gpu();
      const k = new GemvKernels(device, 'cooperative');
      const eps = 1e-5;
      const x = randomUniform(3 + K, 1).map((v) => 5 * v + 0.5);
      const g = randomUniform(K, 2).map((v) => 1 + v);
      const normed = rmsnormForwardCpu(x.subarray(3), g, 1, K, eps).y;
      const ws = widths.map((N, i) => {
        const raw = randomUniform(4 + N * K, 10 + i);
        return half ? Float32Array.from(roundToHalf(raw)) : raw;
      });
      const priors = widths.map((N, i) => randomUniform(1 + N, 20 + i));
      const biases = widths.map((N, i) => randomUniform(N, 30 + i));
      // One L and one R buffer, as decoding holds each layer's x A^T and the adapter's B matrices.
      const l = randomUniform(8, 40);
      const r = randomUniform(2 * (37 + 9), 41);
      const terms = [
        { rank: 2, offsetL: 0, offsetR: 0, scale: 1.5 },
        undefined,
        { rank: 2, offsetL: 4, offsetR: 74, scale: 0.5 },
      ];
      const [bx, bl, br] = [x, l, r].map((a) => uploadBuffer(device, a));
      const ys = priors.map((prior) => uploadBuffer(device, prior));
      const products = widths.map((N, i) => ({
        w: uploadBuffer(device, half ? packHalves(ws[i]) : ws[i]),
        y: ys[i],
        // The second product accumulates onto y, the others overwrite theirs.
        shape: { N, K, offsetA: 3, offsetB: 4, offsetC: 1, alpha: 0.5, beta: i === 1 ? 1 : 0 },
        lowRank: terms[i] && { ...terms[i], l: bl, r: br },
        bias: withBias ? uploadBuffer(device, biases[i]) : undefined,
      }));
      const norm = { weight: uploadBuffer(device, g), eps };
      const op = k.setOp({ x: bx, products, halfW: half, norm });
      expect(op).not.toBeNull();
      // Past the device's storage bindings there is no set: the caller runs the products one by one.
      const many = Array.from({ length: device.limits.maxStorageBuffersPerShaderStage }, () => products[0]);
      expect(k.setOp({ x: bx, products: many, halfW: half, norm })).toBeNull();
      for (const [i, N] of widths.entries()) {
        const sum = new Float64Array(N);
        const term = terms[i] && { ...terms[i], l, r };
        matmulCpu(normed, ws[i], sum, { M: 1, N, K, offsetB: 4 }, { transA: false, transB: true }, term);
        const expected = Float64Array.from(priors[i]);
        for (let n = 0; n < N; n++) {
          expected[1 + n] = 0.5 * (sum[n] + (withBias ? biases[i][n] : 0)) + (i === 1 ? expected[1 + n] : 0);
        }
        const got = await runAndRead(device, i === 0 && op ? [op] : [], ys[i]);
        expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
      }
    });
  }
});

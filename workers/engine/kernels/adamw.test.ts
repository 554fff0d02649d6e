import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { AdamWKernels, PARTIALS_PER_BUFFER } from './adamw';
import { adamwCpu } from './adamw.cpu';

const gpu = setupTestGpu();
const settings = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describe('AdamW', () => {
  it('CPU twin: the first step moves each weight by about lr against its gradient, plus decay', () => {
    const p = [Float64Array.from([1, -2])];
    adamwCpu(p, [[0.5, -3]], [new Float64Array(2)], [new Float64Array(2)], settings, 1, 0);
    // Bias-corrected m / sqrt(v) = sign(g) on the first step.
    expect(p[0][0]).toBeCloseTo(1 * (1 - 0.001) - 0.01, 6);
    expect(p[0][1]).toBeCloseTo(-2 * (1 - 0.001) + 0.01, 6);
  });

  for (const maxNorm of [0, 0.5]) {
    it(`kernels match the CPU twin over three steps on two buffers (maxNorm ${maxNorm})`, async () => {
      const { device } = gpu();
      const k = new AdamWKernels(device);
      const sizes = [37, 20029];
      const params = sizes.map((n, i) => randomUniform(n, i));
      const refParams = params.map((p) => Float64Array.from(p));
      const refM = sizes.map((n) => new Float64Array(n));
      const refV = sizes.map((n) => new Float64Array(n));
      const bp = params.map((p) => uploadBuffer(device, p));
      const bm = sizes.map((n) => createStorageBuffer(device, n * 4));
      const bv = sizes.map((n) => createStorageBuffer(device, n * 4));
      const bg = sizes.map((n) => createStorageBuffer(device, n * 4));
      const partial = createStorageBuffer(device, sizes.length * PARTIALS_PER_BUFFER * 4);
      const clip = createStorageBuffer(device, 8);
      const hyper = k.createHyper();
      const stepOps = sizes.map((n, i) => k.stepOp({ param: bp[i], grad: bg[i], m: bm[i], v: bv[i], clip, hyper, n }));
      for (let step = 1; step <= 3; step++) {
        const grads = sizes.map((n, i) => randomUniform(n, 10 * step + i, -0.2, 0.2));
        grads.forEach((g, i) => {
          device.queue.writeBuffer(bg[i], 0, g);
        });
        k.writeHyper(hyper, settings, step);
        const norm = adamwCpu(refParams, grads, refM, refV, settings, step, maxNorm);
        await runAndRead(
          device,
          [
            ...bg.map((g, i) => k.sumSquaresOp({ grad: g, n: sizes[i], partial, slot: i })),
            k.clipOp({ partial, slots: sizes.length, clip, maxNorm }),
            ...stepOps,
          ],
          clip,
        ).then((c) => expect(c[1]).toBeCloseTo(norm, 4));
      }
      for (const [i, p] of bp.entries())
        expect(maxRelativeError(await readFloat32(device, p), refParams[i])).toBeLessThan(1e-5);
    });
  }
});

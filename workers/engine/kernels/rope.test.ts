import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { RopeKernels, type Rotation } from './rope';
import { ropeCpu } from './rope.cpu';

const gpu = setupTestGpu();
const shape = { batch: 2, seq: 5, heads: 3, headDim: 6 };
const n = shape.batch * shape.seq * shape.heads * shape.headDim;
const half = shape.headDim / 2;
const angles = Float64Array.from({ length: shape.seq * half }, (_, i) => Math.floor(i / half) * 0.7 ** (i % half));
const cos = Float32Array.from(angles, Math.cos);
const sin = Float32Array.from(angles, Math.sin);

describe('rope CPU twin', () => {
  it('rotates each (i, i + half) pair as HF rotate_half does, keeping norms', () => {
    const x = randomUniform(n, 1);
    const y = ropeCpu('forward', x, cos, sin, shape);
    // Element (b=1, t=3, h=2, i=1), and its pair i + half.
    const at = (t: number, i: number) => ((1 * shape.seq + t) * shape.heads + 2) * shape.headDim + i;
    const [c, s] = [cos[3 * half + 1], sin[3 * half + 1]];
    expect(y[at(3, 1)]).toBeCloseTo(x[at(3, 1)] * c - x[at(3, 1 + half)] * s, 6);
    expect(y[at(3, 1 + half)]).toBeCloseTo(x[at(3, 1 + half)] * c + x[at(3, 1)] * s, 6);
    let [normX, normY] = [0, 0];
    for (let i = 0; i < n; i++) [normX, normY] = [normX + x[i] ** 2, normY + y[i] ** 2];
    expect(normY).toBeCloseTo(normX, 5);
  });

  it('inverse rotation after forward is the identity (the backward is the transpose)', () => {
    const x = randomUniform(n, 2);
    const rotated = ropeCpu('forward', x, cos, sin, shape);
    const back = ropeCpu('inverse', rotated, cos, sin, shape);
    expect(maxRelativeError(back, x)).toBeLessThan(1e-6);
  });
});

describe('rope kernel against the CPU twin', () => {
  for (const rotation of ['forward', 'inverse'] as Rotation[]) {
    it(`rotation ${rotation}: queries and keys (fewer heads) in one dispatch`, async () => {
      const { device } = gpu();
      const kernels = new RopeKernels(device);
      const kvHeads = 2;
      const keysShape = { ...shape, heads: kvHeads };
      const q = randomUniform(n, 3);
      const k = randomUniform((n / shape.heads) * kvHeads, 4);
      const [bq, bk, bc, bs] = [q, k, cos, sin].map((x) => uploadBuffer(device, x));
      const [qOut, kOut] = [q, k].map((x) => createStorageBuffer(device, x.length * 4));
      const op = kernels.op(
        { rotation, q: { x: bq, y: qOut }, k: { x: bk, y: kOut }, cos: bc, sin: bs },
        { ...shape, kvHeads },
      );
      expect(
        maxRelativeError(await runAndRead(device, [op], qOut), ropeCpu(rotation, q, cos, sin, shape)),
      ).toBeLessThan(1e-6);
      const keys = await readFloat32(device, kOut);
      expect(maxRelativeError(keys, ropeCpu(rotation, k, cos, sin, keysShape))).toBeLessThan(1e-6);
    });
  }
});

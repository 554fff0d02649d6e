import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { BiasKernels } from './bias';
import { SwiGluKernels } from './swiglu';
import { gegluBackwardCpu, gegluCpu, geluTanh, swigluBackwardCpu, swigluCpu } from './swiglu.cpu';

const gpu = setupTestGpu();

describe('SwiGLU', () => {
  it('CPU twin gradients match finite differences', () => {
    const g = Float64Array.from(randomUniform(9, 1, -4, 4));
    const u = Float64Array.from(randomUniform(9, 2));
    const c = randomUniform(9, 3);
    const loss = () => swigluCpu(g, u).reduce((s, a, i) => s + a * c[i], 0);
    const { dg, du } = swigluBackwardCpu(g, u, c);
    for (let i = 0; i < 9; i++) {
      expect(dg[i]).toBeCloseTo(finiteDifference(loss, g, i), 7);
      expect(du[i]).toBeCloseTo(finiteDifference(loss, u, i), 7);
    }
  });

  it('kernels match the CPU twin', async () => {
    const { device } = gpu();
    const k = new SwiGluKernels(device);
    const n = 1003;
    const [g, u, da] = [randomUniform(n, 4, -6, 6), randomUniform(n, 5), randomUniform(n, 6)];
    const [bg, bu, bda] = [uploadBuffer(device, g), uploadBuffer(device, u), uploadBuffer(device, da)];
    const [ba, bdg, bdu] = [0, 0, 0].map(() => createStorageBuffer(device, n * 4));
    const a = await runAndRead(device, [k.forwardOp({ gate: bg, up: bu, act: ba, n })], ba);
    expect(maxRelativeError(a, swigluCpu(g, u))).toBeLessThan(1e-5);
    const ref = swigluBackwardCpu(g, u, da);
    const dg = await runAndRead(device, [k.backwardOp({ gate: bg, up: bu, dact: bda, dgate: bdg, dup: bdu, n })], bdg);
    expect(maxRelativeError(dg, ref.dg)).toBeLessThan(1e-5);
    expect(maxRelativeError(await readFloat32(device, bdu), ref.du)).toBeLessThan(1e-5);
    // da as three partial sums (down_proj's input gradient left in split-K's slices), added as they are read.
    const [first, second] = [randomUniform(n, 7), randomUniform(n, 8)];
    const slabs = new Float32Array(3 * n);
    slabs.set(first);
    slabs.set(second, n);
    slabs.set(
      da.map((v, i) => v - first[i] - second[i]),
      2 * n,
    );
    const fromSlabs = await runAndRead(
      device,
      [k.backwardOp({ gate: bg, up: bu, dact: uploadBuffer(device, slabs), dactSlabs: 3, dgate: bdg, dup: bdu, n })],
      bdg,
    );
    expect(maxRelativeError(fromSlabs, ref.dg)).toBeLessThan(1e-4);
    expect(maxRelativeError(await readFloat32(device, bdu), ref.du)).toBeLessThan(1e-4);
  });
});

describe('GeGLU (the tanh GELU, Gemma)', () => {
  it('CPU twin: GELU as PyTorch computes gelu(x, approximate="tanh"), gradients as finite differences', () => {
    // torch.nn.functional.gelu(torch.tensor([-3., -0.5, 0.7, 2.5], dtype=torch.float64), approximate='tanh')
    const torch = [-0.0036373920817729943, -0.15428599017485606, 0.5305701347051167, 2.484915733910001];
    for (const [i, x] of [-3, -0.5, 0.7, 2.5].entries()) expect(geluTanh(x)).toBeCloseTo(torch[i], 12);
    const g = Float64Array.from(randomUniform(9, 11, -5, 5));
    const u = Float64Array.from(randomUniform(9, 12));
    const c = randomUniform(9, 13);
    const loss = () => gegluCpu(g, u).reduce((s, a, i) => s + a * c[i], 0);
    const { dg, du } = gegluBackwardCpu(g, u, c);
    for (let i = 0; i < 9; i++) {
      expect(dg[i]).toBeCloseTo(finiteDifference(loss, g, i), 7);
      expect(du[i]).toBeCloseTo(finiteDifference(loss, u, i), 7);
    }
  });

  it('kernels match the CPU twin, far into the tails too', async () => {
    const { device } = gpu();
    const k = new SwiGluKernels(device);
    const n = 1001;
    const [g, u, da] = [randomUniform(n, 14, -12, 12), randomUniform(n, 15), randomUniform(n, 16)];
    g[0] = 80;
    g[1] = -80;
    const [bg, bu, bda] = [uploadBuffer(device, g), uploadBuffer(device, u), uploadBuffer(device, da)];
    const [ba, bdg, bdu] = [0, 0, 0].map(() => createStorageBuffer(device, n * 4));
    const activation = 'gelu' as const;
    const a = await runAndRead(device, [k.forwardOp({ gate: bg, up: bu, act: ba, n, activation })], ba);
    expect(maxRelativeError(a, gegluCpu(g, u))).toBeLessThan(1e-5);
    const ref = gegluBackwardCpu(g, u, da);
    const backward = k.backwardOp({ gate: bg, up: bu, dact: bda, dgate: bdg, dup: bdu, n, activation });
    expect(maxRelativeError(await runAndRead(device, [backward], bdg), ref.dg)).toBeLessThan(1e-5);
    expect(maxRelativeError(await readFloat32(device, bdu), ref.du)).toBeLessThan(1e-5);
  });
});

describe('bias', () => {
  it('adds a bias to every row and accumulates its gradient over rows', async () => {
    const { device } = gpu();
    const k = new BiasKernels(device);
    const [rows, dim] = [13, 7];
    const y = randomUniform(rows * dim, 1);
    const bias = randomUniform(dim, 2);
    const by = uploadBuffer(device, y);
    const got = await runAndRead(device, [k.addOp({ bias: uploadBuffer(device, bias), y: by, rows, dim })], by);
    expect(
      maxRelativeError(
        got,
        Float64Array.from(y, (v, i) => v + bias[i % dim]),
      ),
    ).toBeLessThan(1e-6);

    const dy = randomUniform(rows * dim, 3);
    const bdb = uploadBuffer(device, new Float32Array(dim).fill(1));
    const db = await runAndRead(device, [k.gradOp({ dy: uploadBuffer(device, dy), dbias: bdb, rows, dim })], bdb);
    const expected = new Float64Array(dim).fill(1);
    dy.forEach((v, i) => {
      expected[i % dim] += v;
    });
    expect(maxRelativeError(db, expected)).toBeLessThan(1e-6);
  });
});

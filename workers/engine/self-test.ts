import { randomUniform } from '../../core/random';
import { createStorageBuffer, readFloat32, uploadBuffer } from './gpu/buffers';
import { submitOps } from './gpu/ops';
import { DEFAULT_MATMUL_TILE, MatmulKernel, type MatmulShape } from './kernels/matmul';
import { matmulCpu } from './kernels/matmul.cpu';

export interface SelfTestResult {
  kernel: string;
  shape: { M: number; N: number; K: number };
  maxAbsError: number;
  tolerance: number;
  passed: boolean;
  milliseconds: number;
}

/**
 * Proves the device really computes: runs the engine's matmul (a linear layer's forward, x · W^T) on
 * seeded random inputs of sizes that are not multiples of the tile, and checks it against the CPU twin.
 */
export async function runSelfTest(device: GPUDevice): Promise<SelfTestResult> {
  const shape: MatmulShape = { M: 37, N: 29, K: 53 };
  const variant = { ...DEFAULT_MATMUL_TILE, transA: false, transB: true };
  const a = randomUniform(shape.M * shape.K, 1);
  const b = randomUniform(shape.N * shape.K, 2);
  const expected = new Float64Array(shape.M * shape.N);
  matmulCpu(a, b, expected, shape, variant);

  const started = performance.now();
  const kernel = new MatmulKernel(device, variant);
  const bufA = uploadBuffer(device, a);
  const bufB = uploadBuffer(device, b);
  const bufC = createStorageBuffer(device, expected.length * 4);
  submitOps(device, [kernel.op(bufA, bufB, bufC, shape)]);
  const got = await readFloat32(device, bufC, expected.length * 4);
  const milliseconds = performance.now() - started;
  for (const buffer of [bufA, bufB, bufC]) buffer.destroy();

  let maxAbsError = 0;
  for (let i = 0; i < expected.length; i++) maxAbsError = Math.max(maxAbsError, Math.abs(got[i] - expected[i]));
  // fp32 accumulation of K products of magnitude <= 1.
  const tolerance = 1e-5 * shape.K;
  return {
    kernel: 'matmul x·Wᵀ',
    shape: { M: shape.M, N: shape.N, K: shape.K },
    maxAbsError,
    tolerance,
    passed: Number.isFinite(maxAbsError) && maxAbsError <= tolerance,
    milliseconds,
  };
}

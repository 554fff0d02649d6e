/**
 * The peers' published figures (`../shared/peers/RESULTS.md`, run of 2026-11-26: Debian Chromium 156.0.8078.108
 * headless, SwiftShader, 2 cores), which the report puts beside Hone's and turns into issue 11's ratios. The peers'
 * folder is not part of the repository (CI has no copy), so they are kept here; `peer-workload.test.ts` checks them
 * against the peers' `results/latest.json` wherever that folder exists.
 */

export const PEER_RUN = 'peers, 2026-11-26: Chromium 156.0.8078.108 headless, SwiftShader, 2 cores';

/** Loss before each AdamW step (the first is the untrained model's) at seq 128, batch 1, by layer count. */
export const PEER_LOSSES: Record<number, number[]> = {
  30: [10.935094, 10.400524, 10.023483],
  4: [10.893963, 10.567533, 10.238384, 9.95358, 9.674293],
};

/** How far Hone's first loss may be from the peers' (their own spread across frameworks is under 1e-6). */
export const LOSS_TOLERANCE = 1e-4;

export interface PeerTrainer {
  name: string;
  /** Key in the peers' results (`training.<key>`). */
  key: string;
  secondsPerStep: number;
  tokensPerSecond: number;
  gflops: number;
}

/** One LoRA step at 30 layers, seq 128, batch 1. */
export const PEER_TRAINERS: PeerTrainer[] = [
  { name: 'jax-js (webgpu, jit)', key: 'jax-webgpu', secondsPerStep: 58.48, tokensPerSecond: 2.19, gflops: 1.3 },
  { name: 'tfjs (webgpu)', key: 'tfjs-webgpu', secondsPerStep: 202.28, tokensPerSecond: 0.63, gflops: 0.38 },
  { name: 'tfjs (wasm)', key: 'tfjs-wasm', secondsPerStep: 21.8, tokensPerSecond: 5.87, gflops: 3.49 },
];

export interface PeerMatmul {
  /** The hand-written WGSL kernel (8x8 outputs per thread, no workgroup memory). */
  wgsl: number;
  /** onnxruntime-web's WebGPU MatMul, output left on the GPU, and with it read back (GFLOP/s). */
  ort: number;
  ortReadback: number;
}

/** GFLOP/s on the peers' three MatMul shapes, in `PEER_MATMUL_SHAPES`' order. */
export const PEER_MATMUL: PeerMatmul[] = [
  { wgsl: 1.92, ort: 0.51, ortReadback: 0.65 },
  { wgsl: 2.75, ort: 0.54, ortReadback: 0.69 },
  { wgsl: 2.41, ort: 0.57, ortReadback: 0.64 },
];

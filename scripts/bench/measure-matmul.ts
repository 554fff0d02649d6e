import { mulberry32 } from '../../core/random';
import { readFloat32, uploadBuffer } from '../../workers/engine/gpu/buffers';
import { type Op, releaseOps, submitOps } from '../../workers/engine/gpu/ops';
import {
  CPU_MATMUL_TILE,
  GPU_MATMUL_CANDIDATES,
  type MatmulTile,
  MatmulTuner,
} from '../../workers/engine/model/matmul-tuner';
import { PEER_MATMUL_SHAPES, type PeerMatmulShape, peerMatmulOperands } from './peer-workload';

/**
 * The variants timed. CPU adapters get the register-block family only: workgroup-memory tiles run 2-4x slower
 * there (docs and notes), and the LM head's product takes seconds per run, so timing them would only cost minutes.
 */
export function matmulCandidates(fallbackAdapter: boolean): MatmulTile[] {
  if (!fallbackAdapter) return GPU_MATMUL_CANDIDATES;
  return [
    CPU_MATMUL_TILE,
    { ...CPU_MATMUL_TILE, tileM: 4, tileN: 4 },
    { ...CPU_MATMUL_TILE, workgroupX: 16, workgroupY: 16 },
  ];
}

export const tileName = (t: MatmulTile) =>
  `${t.tiled ? 'tiled' : 'registers'} ${t.tileM}x${t.tileN}/${t.workgroupX}x${t.workgroupY}${t.vectorK ? ', K in vectors' : ''}${t.kSlices ? ` in ${t.kSlices} K slices` : ''}${t.splitK ? ` split-K ${t.splitK}` : ''}`;

export interface MatmulRow {
  shape: string;
  tile: string;
  seconds: number;
  gflops: number;
  /** Largest |C - exact| / Σ|a·b| over sampled entries of C (float64 dot products). */
  maxRelativeError: number;
}

/** Seconds per run of `ops`, after a warm-up run, with enough runs back to back to fill about half a second. */
export async function timeOps(device: GPUDevice, ops: Op[]): Promise<number> {
  const once = async (reps: number) => {
    const started = performance.now();
    for (let i = 0; i < reps; i++) submitOps(device, ops);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - started) / 1000 / reps;
  };
  const warm = await once(1);
  return once(Math.max(1, Math.min(200, Math.round(0.5 / Math.max(warm, 1e-6)))));
}

/**
 * The peers' three products ([M, K] · [K, N], B stored [K, N], their seeded operands) on each candidate variant:
 * GFLOP/s, and each result spot-checked so a fast wrong kernel cannot pass.
 */
export async function measureMatmuls(
  device: GPUDevice,
  candidates: MatmulTile[],
  log: (line: string) => void,
): Promise<MatmulRow[]> {
  const rows: MatmulRow[] = [];
  for (const s of PEER_MATMUL_SHAPES) {
    const { A, B } = peerMatmulOperands(s);
    const [a, b] = [uploadBuffer(device, A), uploadBuffer(device, B)];
    const c = device.createBuffer({
      size: s.M * s.N * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    for (const tile of candidates) {
      const shape = { M: s.M, N: s.N, K: s.K };
      const ops = new MatmulTuner(device, tile).productFor(false, false, shape).ops(a, b, c, shape);
      const seconds = await timeOps(device, ops);
      releaseOps(ops);
      const error = spotCheck(s, A, B, await readFloat32(device, c));
      const row = {
        shape: s.name,
        tile: tileName(tile),
        seconds,
        gflops: (2 * s.M * s.N * s.K) / seconds / 1e9,
        maxRelativeError: error,
      };
      log(`matmul ${row.shape} ${row.tile}: ${row.gflops.toFixed(2)} GFLOP/s`);
      rows.push(row);
    }
    for (const buffer of [a, b, c]) buffer.destroy();
  }
  return rows;
}

/** Compares 64 sampled entries of C with float64 dot products, relative to the sum of the products' magnitudes. */
function spotCheck(s: PeerMatmulShape, A: Float32Array, B: Float32Array, C: Float32Array): number {
  const next = mulberry32(7);
  let worst = 0;
  for (let i = 0; i < 64; i++) {
    const [r, col] = [Math.floor(next() * s.M), Math.floor(next() * s.N)];
    let exact = 0;
    let magnitude = 0;
    for (let k = 0; k < s.K; k++) {
      const p = A[r * s.K + k] * B[k * s.N + col];
      exact += p;
      magnitude += Math.abs(p);
    }
    worst = Math.max(worst, Math.abs(C[r * s.N + col] - exact) / (magnitude || 1));
  }
  return worst;
}

/** The fastest row of each shape. */
export function bestPerShape(rows: MatmulRow[]): MatmulRow[] {
  const best = new Map<string, MatmulRow>();
  for (const row of rows) if (row.gflops > (best.get(row.shape)?.gflops ?? 0)) best.set(row.shape, row);
  return [...best.values()];
}

import type { KernelTime } from '../../workers/engine/gpu/profile';
import type { BenchResult } from './measure';
import { bestPerShape } from './measure-matmul';
import { LOSS_TOLERANCE, PEER_LOSSES, PEER_MATMUL, PEER_RUN, PEER_TRAINERS } from './peer-figures';
import { PEER_MATMUL_SHAPES } from './peer-workload';

const MiB = 2 ** 20;
/** Issue 11's memory target: SmolLM2-135M LoRA training at seq 512, batch 4 under 1.5 GB. */
const MEMORY_TARGET = { layers: 30, seq: 512, batch: 4, bytes: 1.5e9 };

export interface Target {
  target: string;
  ratio: number;
  needed: number;
  met: boolean;
}

/** The peers' losses for this run's workload, when they published it (seq 128, batch 1, their layer counts). */
export function peerLosses(r: BenchResult): number[] | null {
  const o = r.options;
  // A quantized base computes with other weights than the peers'.
  const theirs = o.shape === 'smollm2-135m' && o.seq === 128 && o.batch === 1 && !o.base;
  return theirs ? (PEER_LOSSES[o.layers] ?? null) : null;
}

/** Failures that make the bench exit 1: a first loss off the peers', a product that computes the wrong thing. */
export function failures(r: BenchResult): string[] {
  const out: string[] = [];
  const expected = peerLosses(r)?.[0];
  const first = r.step?.losses[0];
  if (expected !== undefined && first !== undefined && !(Math.abs(first - expected) <= LOSS_TOLERANCE)) {
    out.push(
      `first loss ${first.toFixed(6)} differs from the peers' ${expected.toFixed(6)} by more than ${LOSS_TOLERANCE}`,
    );
  }
  for (const row of r.matmul) {
    if (!(row.maxRelativeError < 1e-4))
      out.push(`matmul ${row.shape} ${row.tile} is wrong: error ${row.maxRelativeError}`);
  }
  return out;
}

/** Issue 11's targets this run can speak to, each a ratio. */
export function targets(r: BenchResult): Target[] {
  const out: Target[] = [];
  const ratio = (target: string, value: number, needed: number) =>
    out.push({ target, ratio: value, needed, met: value >= needed });
  const o = r.options;
  // The peers' figures are SwiftShader's: against another adapter's run they would be no ratio on one adapter.
  const peersAdapter = /swiftshader/i.test(`${r.adapter.vendor} ${r.adapter.architecture} ${r.adapter.description}`);
  if (peersAdapter && r.step && o.layers === 30 && o.seq === 128 && o.batch === 1) {
    const tokensPerSecond = (o.batch * o.seq) / r.step.secondsPerStep;
    for (const [key, needed] of [
      ['jax-webgpu', 2],
      ['tfjs-webgpu', 10],
    ] as const) {
      const peer = PEER_TRAINERS.find((t) => t.key === key);
      if (peer) ratio(`LoRA step tokens/s vs ${peer.name}`, tokensPerSecond / peer.tokensPerSecond, needed);
    }
  }
  const best = bestPerShape(r.matmul);
  PEER_MATMUL_SHAPES.forEach((s, i) => {
    const row = best.find((b) => b.shape === s.name);
    const ort = Math.max(PEER_MATMUL[i].ort, PEER_MATMUL[i].ortReadback);
    if (peersAdapter && row) ratio(`matmul ${s.name} vs onnxruntime-web`, row.gflops / ort, 4);
  });
  if (r.decode)
    ratio('decode vs memory-bound limit', r.decode.tokensPerSecond / r.decode.memoryBoundTokensPerSecond, 0.5);
  if (o.layers === MEMORY_TARGET.layers && o.seq === MEMORY_TARGET.seq && o.batch === MEMORY_TARGET.batch) {
    // Below the limit is good: the ratio is limit / peak, so 1 or more meets it.
    ratio(`peak GPU memory under 1.5 GB at seq 512, batch 4`, MEMORY_TARGET.bytes / r.memory.peakBytes, 1);
  }
  return out;
}

const table = (header: string[], rows: (string | number)[][]) =>
  [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');

/** GPU time per kernel, from timestamp queries (a step's, or one decoded token's). */
const profileTable = (profile: KernelTime[]) =>
  table(
    ['kernel', 'dispatches', 'GPU ms'],
    profile.map((k) => [k.label, k.dispatches, k.milliseconds.toFixed(2)]),
  );

const fixed = (digits: number) => (v: number) => v.toFixed(digits);

/** The run as Markdown tables (what docs/PERFORMANCE.md keeps). */
export function formatReport(r: BenchResult): string {
  const a = r.adapter;
  const o = r.options;
  const parts: string[] = [
    `Adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ')}${a.isFallbackAdapter ? ' (software)' : ''}; ${r.environment}`,
    o.shape === 'smollm2-135m'
      ? `Workload: the peers' SmolLM2-135M shape, ${o.layers} layers, batch ${o.batch} × seq ${o.seq}, LoRA r 16 on all seven projections, no clipping${o.f16 ? ', fp16 frozen matrices' : ''}${o.base ? `, ${o.base} base projections` : ''}${o.recompute ? ', activations recomputed' : ''}${o.gpuKernels ? ", GPUs' kernel choices (forced)" : ''}${o.attentionTile ? `, attention in tiles of ${o.attentionTile} rows` : ''}${o.groupedKSlices ? `, LoRA gradients' K in ${o.groupedKSlices} slices` : ''}`
      : `Workload: ${o.shape}'s shape, ${o.layers} layers, patterned weights${o.f16 ? ' (fp16 matrices)' : ''}${o.base ? `, ${o.base} base projections` : ''}${r.step || o.allocateOnly ? `, the peers' tokens, batch ${o.batch} × seq ${o.seq}${o.recompute ? ', activations recomputed' : ''}` : ': decoding only'}${o.gpuKernels ? ", GPUs' kernel choices (forced)" : ''}`,
  ];
  if (r.matmul.length) {
    const peer = (shape: string) => PEER_MATMUL[PEER_MATMUL_SHAPES.findIndex((s) => s.name === shape)];
    parts.push(
      table(
        ['matmul [M×K]·[K×N]', 'variant', 'GFLOP/s', 'max rel. error', "peers' WGSL", 'ORT (best of two)'],
        r.matmul.map((m) => [
          m.shape,
          m.tile,
          m.gflops.toFixed(2),
          m.maxRelativeError.toExponential(1),
          peer(m.shape).wgsl.toFixed(2),
          Math.max(peer(m.shape).ort, peer(m.shape).ortReadback).toFixed(2),
        ]),
      ),
    );
  }
  const bestMatmul = Math.max(0, ...r.matmul.map((m) => m.gflops));
  if (r.step) {
    const s = r.step;
    const gflops = r.usefulGflop / s.secondsPerStep;
    parts.push(
      table(
        [
          'layers',
          'batch × seq',
          'step matmul',
          's/step',
          'tokens/s',
          'useful GFLOP',
          'useful GFLOP/s',
          '/ best matmul',
          'dispatches',
        ],
        [
          [
            o.layers,
            `${o.batch} × ${o.seq}`,
            r.stepMatmul,
            s.secondsPerStep.toFixed(2),
            ((o.batch * o.seq) / s.secondsPerStep).toFixed(2),
            r.usefulGflop.toFixed(2),
            gflops.toFixed(2),
            bestMatmul ? `${((100 * gflops) / bestMatmul).toFixed(0)}% of ${bestMatmul.toFixed(2)}` : '-',
            s.dispatchesPerStep,
          ],
        ],
      ),
    );
    const peers = peerLosses(r);
    parts.push(
      `Loss before each update: ${s.losses.map(fixed(6)).join(' → ')}` +
        (peers
          ? `\nPeers' (${o.layers} layers):     ${peers.slice(0, s.losses.length).map(fixed(6)).join(' → ')}`
          : ''),
    );
    if (s.profile.length) parts.push(profileTable(s.profile));
  }
  if (r.decode) {
    const d = r.decode;
    parts.push(
      table(
        [
          'prompt',
          'prefill tokens/s',
          'decoded',
          'decode tokens/s',
          'weight MiB per token',
          'copy GB/s',
          'memory-bound tokens/s',
          'reached',
          'dispatches per token',
        ],
        [
          [
            d.promptTokens,
            d.prefillTokensPerSecond.toFixed(1),
            d.decodedTokens,
            d.tokensPerSecond.toFixed(2),
            (d.bytesPerToken / MiB).toFixed(0),
            (d.copyBytesPerSecond / 1e9).toFixed(2),
            d.memoryBoundTokensPerSecond.toFixed(2),
            `${((100 * d.tokensPerSecond) / d.memoryBoundTokensPerSecond).toFixed(1)}%`,
            d.dispatchesPerToken,
          ],
        ],
      ),
    );
    if (d.profile.length) parts.push(profileTable(d.profile));
  }
  const e = r.estimate;
  parts.push(
    table(
      ['GPU memory at the peak, by owner', 'MiB'],
      [
        ...Object.entries(r.memory.atPeak).map(([owner, bytes]) => [owner, (bytes / MiB).toFixed(1)]),
        ['**peak**', `**${(r.memory.peakBytes / MiB).toFixed(1)}**`],
        [
          'estimate (core/model-memory: weights + activations + adapter)',
          `${(e.total / MiB).toFixed(1)} (${(e.weights / MiB).toFixed(0)} + ${(e.activations / MiB).toFixed(0)} + ${(e.adapter / MiB).toFixed(0)})`,
        ],
      ],
    ),
  );
  const t = targets(r);
  if (t.length) {
    parts.push(
      `Issue 11's targets (peers' figures: ${PEER_RUN})\n` +
        table(
          ['target', 'ratio', 'needed', 'met'],
          t.map((x) => [x.target, x.ratio.toPrecision(3), `≥ ${x.needed}`, x.met ? 'met' : 'not met']),
        ),
    );
  }
  return parts.join('\n\n');
}

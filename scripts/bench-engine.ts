/**
 * `npm run bench:engine`: the engine's speed on the peers' workload (`../shared/peers`: one LoRA training step on
 * SmolLM2-135M's shape with their seeded weights and tokens, r = 16 on all seven projections, seq 128, batch 1, AdamW
 * without clipping), in Node (Dawn) or, with --browser, in headless Chromium on its WebGPU adapter. Prints:
 *   - matmul GFLOP/s on the peers' three MatMul shapes, per variant, each result spot-checked;
 *   - the step: s/step, tokens/s, useful GFLOP/s and its share of the best matmul rate, the loss before each update
 *     beside the peers' (exit code 1 when the first differs from theirs by more than 1e-4);
 *   - decode tokens/s beside the memory-bound limit (weight bytes per token over the measured copy bandwidth);
 *   - peak GPU bytes, by owner, beside the Train step's estimate;
 *   - issue 11's targets this run can speak to, as ratios.
 * Useful FLOPs count what a LoRA step must compute (the peers' definition, `bench/useful-flops.ts`).
 *
 * Options: --browser --shape NAME (smollm2-135m, the peers'; gemma-3-270m, llama-3.2-1b, qwen2.5-1.5b, llama-3.2-3b
 *          with patterned weights; or qwen2.5-0.5b, qwen3-0.6b, decoding only: add --skip-step) --layers N (the shape's) --seq N (128) --batch N (1)
 *          --steps N (timed after one warm-up, 2) --f16 --base q8|q4|nf4 (LoRA over a quantized base; f16: none)
 *          --recompute (gradient checkpointing)
 *          --tune / --no-tune (per-shape matmul tuning; default on hardware adapters) --profile (GPU time per kernel)
 *          --decode N (tokens decoded, 8; 0 skips) --prompt N (4) --skip-matmul --skip-step --json
 *          --allocate-only (allocate the step for the configuration, e.g. --seq 512 --batch 4, and report its
 *          memory without running it) --gpu-kernels (GPUs' kernel choices whatever the adapter: on a software
 *          adapter, a check of the hardware path's losses at the real shapes, not of its speed)
 *          --attention-tile N (attention in workgroup tiles of N rows, 8 or 16, whatever the adapter)
 *          --grouped-k-slices N (invocations per block of LoRA's grouped weight gradients: 1, 2, 4 or 8)
 */
import { parseArgs } from 'node:util';
import { acquireNodeGpu } from '../cli/node-gpu';
import type { QuantFormat } from '../core/base-precision';
import { type BenchOptions, type BenchResult, runBench } from './bench/measure';
import { failures, formatReport, targets } from './bench/report';
import { BENCH_SHAPES, type BenchShape, benchConfig } from './bench/shapes';

const { values: args } = parseArgs({
  options: {
    browser: { type: 'boolean', default: false },
    shape: { type: 'string', default: 'smollm2-135m' },
    layers: { type: 'string' },
    seq: { type: 'string', default: '128' },
    batch: { type: 'string', default: '1' },
    steps: { type: 'string', default: '2' },
    f16: { type: 'boolean', default: false },
    base: { type: 'string' },
    recompute: { type: 'boolean', default: false },
    tune: { type: 'boolean' },
    'no-tune': { type: 'boolean' },
    profile: { type: 'boolean', default: false },
    decode: { type: 'string', default: '8' },
    prompt: { type: 'string', default: '4' },
    'skip-matmul': { type: 'boolean', default: false },
    'skip-step': { type: 'boolean', default: false },
    'allocate-only': { type: 'boolean', default: false },
    'gpu-kernels': { type: 'boolean', default: false },
    'attention-tile': { type: 'string' },
    'grouped-k-slices': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const shape = args.shape as BenchShape;
if (!BENCH_SHAPES.includes(shape)) throw new Error(`--shape must be one of ${BENCH_SHAPES.join(', ')}`);

function count(name: keyof typeof args, min: number): number {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
  return value;
}

/** --base: the projections quantized (q8, q4, nf4), or f16 / absent for none. */
function baseFormat(value: string | undefined): QuantFormat | null {
  if (value === undefined || value === 'f16') return null;
  if (!['q8', 'q4', 'nf4'].includes(value)) throw new Error('--base must be f16, q8, q4 or nf4');
  return value as QuantFormat;
}

const options: BenchOptions = {
  shape,
  layers: benchConfig(shape, args.layers === undefined ? undefined : count('layers', 1)).numLayers,
  seq: count('seq', 1),
  batch: count('batch', 1),
  steps: count('steps', 1),
  f16: Boolean(args.f16),
  base: baseFormat(args.base),
  recompute: Boolean(args.recompute),
  tune: args['no-tune'] ? false : args.tune,
  profile: Boolean(args.profile),
  matmul: !args['skip-matmul'],
  step: !args['skip-step'],
  decode: count('decode', 0),
  decodePrompt: count('prompt', 1),
  allocateOnly: Boolean(args['allocate-only']),
  gpuKernels: Boolean(args['gpu-kernels']),
  attentionTile: args['attention-tile'] === undefined ? undefined : count('attention-tile', 8),
  groupedKSlices: args['grouped-k-slices'] === undefined ? undefined : count('grouped-k-slices', 1),
};

async function benchInNode(): Promise<BenchResult> {
  const { device, summary } = await acquireNodeGpu();
  try {
    const driver = process.env.VK_ICD_FILENAMES ?? 'the system Vulkan driver';
    const environment = `Node ${process.version}, Dawn (webgpu package) on ${driver}`;
    return await runBench(device, summary, environment, options, (line) => process.stderr.write(`  ${line}\n`));
  } finally {
    device.destroy();
  }
}

async function main(): Promise<number> {
  // Browser mode loads esbuild and Playwright only when asked: the Node bench is bundled alone for GPU machines
  // without them (scripts/device/prepare.sh).
  const result = args.browser ? await (await import('./bench/browser')).benchInBrowser(options) : await benchInNode();
  const problems = failures(result);
  if (args.json)
    process.stdout.write(`${JSON.stringify({ ...result, targets: targets(result), problems }, null, 2)}\n`);
  else console.log(formatReport(result));
  for (const problem of problems) console.error(`FAILED: ${problem}`);
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

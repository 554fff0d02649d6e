/**
 * `npm run bench:engine`: the engine's speed on the adapter it runs on. Prints a table and JSON:
 *   - the best matmul rate our kernels reach on the training step's shapes (GFLOP/s), per tile variant;
 *   - one LoRA training step (forward + backward + AdamW) on SmolLM2-135M's shape with random weights
 *     (r = 16 on all seven projections; seq 128, batch 1 by default): s/step, tokens/s, useful GFLOP/s,
 *     useful rate / best matmul rate, and the GPU bytes allocated (every allocation lives for the whole step,
 *     so this is the peak).
 * Useful FLOPs count what a LoRA step must compute (forward and input-gradient products of the frozen
 * linears and the LM head, attention's four T x T products forward and backward, the LoRA matmuls), not
 * recomputation, so the ratio shows how much of the matmul rate the whole step keeps.
 *
 * The step's matmuls default to the variant with the least total time over the step's main shapes; on hardware
 * adapters (or with --tune) each distinct product of the step is then timed on every candidate and gets its own.
 *
 * Options: --seq N --batch N --layers N (default 30) --rank N --steps N (timed, default 2) --skip-matmul
 *          --profile (GPU time per kernel, from timestamp queries) --f16 (frozen matrices as fp16) --json
 *          --decode N (instead of the step: N tokens of generation with the key-value cache after a 32-token
 *          prompt, beside the weight bytes each token reads and the adapter's copy bandwidth)
 */
import { parseArgs } from 'node:util';
import { acquireNodeGpu } from '../cli/node-gpu';
import { type ModelConfig, PROJECTIONS, projectionShape } from '../core/model-config';
import { mulberry32 } from '../core/random';
import { createStorageBuffer, readFloat32 } from '../workers/engine/gpu/buffers';
import { type Op, submitOps } from '../workers/engine/gpu/ops';
import { type KernelTime, profileOps } from '../workers/engine/gpu/profile';
import { MatmulKernel, type MatmulShape } from '../workers/engine/kernels/matmul';
import { Decoder } from '../workers/engine/model/decoder';
import { EngineKernels } from '../workers/engine/model/kernels';
import { everyLayer, GpuLora, peftInit } from '../workers/engine/model/lora';
import { CPU_MATMUL_TILE, GPU_MATMUL_CANDIDATES, type MatmulTile } from '../workers/engine/model/matmul-tuner';
import { AdamW } from '../workers/engine/model/optimizer';
import { TransformerStep } from '../workers/engine/model/transformer';
import { GpuWeights } from '../workers/engine/model/weights';

const { values: opts } = parseArgs({
  options: {
    seq: { type: 'string', default: '128' },
    batch: { type: 'string', default: '1' },
    layers: { type: 'string', default: '30' },
    rank: { type: 'string', default: '16' },
    steps: { type: 'string', default: '2' },
    'skip-matmul': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    tune: { type: 'boolean' },
    f16: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    decode: { type: 'string' },
  },
});
const seq = Number(opts.seq);
const batch = Number(opts.batch);
const rank = Number(opts.rank);
const timedSteps = Number(opts.steps);

/** SmolLM2-135M's architecture. */
const config: ModelConfig = {
  modelType: 'llama',
  vocabSize: 49152,
  hiddenSize: 576,
  intermediateSize: 1536,
  numLayers: Number(opts.layers),
  numHeads: 9,
  numKvHeads: 3,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  ropeScaling: null,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
};

/** The matmul variants tried: register blocks (CPU adapters' favourite) and workgroup-memory tiles (GPUs'). */
const TILES: MatmulTile[] = [...GPU_MATMUL_CANDIDATES, { tileM: 8, tileN: 8, workgroupX: 16, workgroupY: 16 }];

const tileName = (t: MatmulTile) =>
  `${t.tiled ? 'tiled ' : ''}${t.tileM}x${t.tileN}/${t.workgroupX}x${t.workgroupY}${t.splitK ? ` split-K ${t.splitK}` : ''}`;

/** Useful FLOPs of one LoRA step, by part (see the header). */
function usefulFlops(c: ModelConfig, tokens: number, r: number) {
  let linear = 0;
  let lora = 0;
  for (const p of PROJECTIONS) {
    const [out, inDim] = projectionShape(c, p);
    linear += 2 * 2 * tokens * inDim * out;
    lora += 6 * tokens * r * (inDim + out);
  }
  const head = 2 * 2 * tokens * c.hiddenSize * c.vocabSize;
  const attention = 12 * batch * seq * seq * c.headDim * c.numHeads;
  const total = (linear + lora + attention) * c.numLayers + head;
  return { total, linear: linear * c.numLayers, lora: lora * c.numLayers, attention: attention * c.numLayers, head };
}

async function timeOps(device: GPUDevice, ops: Op[], reps: number): Promise<number> {
  submitOps(device, ops);
  await device.queue.onSubmittedWorkDone();
  const started = performance.now();
  for (let i = 0; i < reps; i++) submitOps(device, ops);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - started) / 1000 / reps;
}

/** The main products of the step: forward (x W^T), input gradient (dy W), and the LM head slice. */
function stepShapes(tokens: number): { name: string; transA: boolean; transB: boolean; shape: MatmulShape }[] {
  const [d, f] = [config.hiddenSize, config.intermediateSize];
  return [
    { name: `x·Wᵀ ${tokens}x${f}x${d} (gate/up)`, transA: false, transB: true, shape: { M: tokens, N: f, K: d } },
    { name: `x·Wᵀ ${tokens}x${d}x${f} (down)`, transA: false, transB: true, shape: { M: tokens, N: d, K: f } },
    { name: `dy·W ${tokens}x${d}x${f} (gate/up dx)`, transA: false, transB: false, shape: { M: tokens, N: d, K: f } },
    { name: `x·Eᵀ ${tokens}x8192x${d} (LM head)`, transA: false, transB: true, shape: { M: tokens, N: 8192, K: d } },
  ];
}

async function benchMatmul(device: GPUDevice, tokens: number) {
  const rows: { shape: string; tile: string; gflops: number; seconds: number }[] = [];
  const big = 8192 * config.hiddenSize;
  const a = createStorageBuffer(device, Math.max(tokens, 8192) * config.intermediateSize * 4);
  const b = createStorageBuffer(device, Math.max(big, config.intermediateSize * config.hiddenSize) * 4);
  const c = createStorageBuffer(device, tokens * 8192 * 4);
  for (const s of stepShapes(tokens)) {
    for (const tile of TILES) {
      const kernel = new MatmulKernel(device, { ...tile, transA: s.transA, transB: s.transB });
      const op = kernel.op(a, b, c, s.shape);
      const flops = 2 * s.shape.M * s.shape.N * s.shape.K;
      // Aim for about a quarter second per measurement, whatever the adapter's speed.
      const once = await timeOps(device, [op], 1);
      const reps = Math.max(1, Math.min(200, Math.round(0.25 / Math.max(once, 1e-6))));
      const seconds = await timeOps(device, Array(reps).fill(op), 1);
      rows.push({
        shape: s.name,
        tile: tileName(tile),
        gflops: (flops * reps) / seconds / 1e9,
        seconds: seconds / reps,
      });
    }
  }
  for (const buffer of [a, b, c]) buffer.destroy();
  return rows;
}

/** Fills a tensor with N(0, 0.02²)-ish values (uniform with that std), fast and seeded. */
function randomTensor(n: number, seed: number, std: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  const bound = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

/** The bench model's weights: uniform with std 0.02, norms at 1, fp16 matrices with --f16. */
async function randomWeights(device: GPUDevice): Promise<GpuWeights> {
  let seed = 1;
  return GpuWeights.upload(
    device,
    config,
    (key) => {
      const n = key.endsWith('norm.weight') ? config.hiddenSize : tensorSize(key);
      return key.endsWith('norm.weight') ? new Float32Array(n).fill(1) : randomTensor(n, seed++, 0.02);
    },
    { halfMatrices: opts.f16 },
  );
}

async function benchStep(device: GPUDevice, tile: MatmulTile, tune: boolean) {
  const kernels = new EngineKernels(device, tile);
  const weights = await randomWeights(device);
  const lora = GpuLora.create(
    device,
    config,
    { r: rank, loraAlpha: 2 * rank, useRslora: false, loraDropout: 0, modules: everyLayer(config, PROJECTIONS) },
    peftInit(2),
  );
  let step = new TransformerStep(device, kernels, weights, lora, { batch, seq }, { full: false });
  let tunedShapes = 0;
  if (tune) {
    // Recording the plan told the tuner every product it needs; time them, then record the plan again.
    tunedShapes = await kernels.matmuls.tune(GPU_MATMUL_CANDIDATES);
    step.destroy();
    step = new TransformerStep(device, kernels, weights, lora, { batch, seq }, { full: false });
  }
  const optimizer = new AdamW(device, kernels, [{ param: lora.params, grad: lora.grads, n: lora.length }], {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.01,
    maxGradNorm: 1,
  });
  const next = mulberry32(99);
  step.setBatch(
    Array.from({ length: batch }, () => Array.from({ length: seq }, () => Math.floor(next() * config.vocabSize))),
  );
  const ops = [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops];
  const times: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i <= timedSteps; i++) {
    optimizer.prepareStep();
    const started = performance.now();
    submitOps(device, ops);
    losses.push(await step.readLoss());
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  let profile: KernelTime[] = [];
  if (opts.profile) {
    optimizer.prepareStep();
    profile = await profileOps(device, ops);
  }
  const bytes = weights.byteLength + step.byteLength + optimizer.byteLength + lora.length * 8;
  const result = {
    seconds: Math.min(...times),
    losses,
    bytes,
    dispatches: ops.length,
    loraParams: lora.length,
    profile,
    tunedShapes,
    matmulChoices: kernels.matmuls.choices().map((c) => ({ shape: c.shape, tile: tileName(c.tile) })),
  };
  step.destroy();
  optimizer.destroy();
  lora.destroy();
  weights.destroy();
  return result;
}

/** Bytes per second of a large buffer-to-buffer copy: the memory bandwidth the adapter reaches. */
async function copyBandwidth(device: GPUDevice, fallback: boolean): Promise<number> {
  const bytes = (fallback ? 64 : 512) * 2 ** 20;
  const a = createStorageBuffer(device, bytes);
  const b = createStorageBuffer(device, bytes);
  const copy: Op = { kind: 'copy', source: a, target: b, byteLength: bytes };
  const reps = fallback ? 3 : 20;
  const seconds = await timeOps(device, Array(reps).fill(copy), 1);
  a.destroy();
  b.destroy();
  // A copy reads and writes every byte.
  return (2 * bytes * reps) / seconds;
}

/**
 * Generation speed: a 32-token prompt fed through the decoder, then `count` tokens decoded greedily, one readback of
 * the logits per token. Decoding batch 1 reads every weight matrix once per token, so the copy bandwidth over those
 * bytes is the memory-bound limit.
 */
async function benchDecode(device: GPUDevice, count: number, fallback: boolean) {
  const kernels = new EngineKernels(device, fallback ? CPU_MATMUL_TILE : GPU_MATMUL_CANDIDATES[0]);
  const weights = await randomWeights(device);
  const prompt = Array.from({ length: 32 }, (_, i) => (i * 7919) % config.vocabSize);
  const decoder = new Decoder(device, kernels, weights, null, prompt.length + count + 1);
  const started = performance.now();
  let logits = await decoder.feed(prompt);
  const prefill = (performance.now() - started) / 1000;
  const decodeStarted = performance.now();
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    logits = await decoder.step(best);
  }
  const seconds = (performance.now() - decodeStarted) / 1000;
  // GPU time per kernel of one more token (its inputs as the last token left them).
  const profile = opts.profile ? await profileOps(device, decoder.ops) : [];
  let matrices = config.vocabSize * config.hiddenSize;
  for (const p of PROJECTIONS) matrices += projectionShape(config, p).reduce((a, b) => a * b, 1) * config.numLayers;
  const bytesPerToken = matrices * (opts.f16 ? 2 : 4);
  const bandwidth = await copyBandwidth(device, fallback);
  // What one round trip to the GPU costs (submit, wait, map a 4-byte buffer): paid once per decoded token.
  const probe = createStorageBuffer(device, 4);
  await readFloat32(device, probe, 4);
  const roundTripStarted = performance.now();
  for (let i = 0; i < 20; i++) await readFloat32(device, probe, 4);
  const roundTrip = (performance.now() - roundTripStarted) / 1000 / 20;
  probe.destroy();
  decoder.destroy();
  weights.destroy();
  const tokensPerSecond = count / seconds;
  return {
    promptTokensPerSecond: prompt.length / prefill,
    tokensPerSecond,
    bytesPerToken,
    copyBytesPerSecond: bandwidth,
    memoryBoundTokensPerSecond: bandwidth / bytesPerToken,
    fractionOfMemoryBound: tokensPerSecond / (bandwidth / bytesPerToken),
    readbackSeconds: roundTrip,
    dispatchesPerToken: decoder.ops.length,
    profile,
  };
}

function tensorSize(key: string): number {
  if (key === 'model.embed_tokens.weight') return config.vocabSize * config.hiddenSize;
  const projection = PROJECTIONS.find((p) => key.endsWith(`${p}.weight`));
  if (!projection) throw new Error(`unexpected tensor ${key}`);
  const [out, inDim] = projectionShape(config, projection);
  return out * inDim;
}

async function main() {
  const { device, summary } = await acquireNodeGpu();
  if (opts.decode !== undefined) {
    const d = await benchDecode(device, Number(opts.decode), summary.isFallbackAdapter);
    const a = `${summary.vendor} ${summary.architecture} ${summary.description}`;
    if (opts.json)
      process.stdout.write(`${JSON.stringify({ adapter: a, layers: config.numLayers, f16: opts.f16, ...d })}\n`);
    else {
      console.log(
        `Adapter: ${a}\nDecode (${config.numLayers} layers, ${opts.f16 ? 'fp16' : 'fp32'} matrices, batch 1):`,
      );
      console.log(
        '| prompt tokens/s | decode tokens/s | weight MB per token | copy GB/s | memory-bound tokens/s | reached | readback ms |',
      );
      console.log('|---|---|---|---|---|---|---|');
      console.log(
        `| ${d.promptTokensPerSecond.toFixed(1)} | ${d.tokensPerSecond.toFixed(1)} | ${(d.bytesPerToken / 2 ** 20).toFixed(1)} | ${(d.copyBytesPerSecond / 1e9).toFixed(1)} | ${d.memoryBoundTokensPerSecond.toFixed(0)} | ${(100 * d.fractionOfMemoryBound).toFixed(1)}% | ${(1000 * d.readbackSeconds).toFixed(2)} |`,
      );
    }
    for (const k of d.profile) console.log(`| ${k.label} | ${k.dispatches} | ${k.milliseconds.toFixed(3)} |`);
    device.destroy();
    return;
  }
  const tokens = batch * seq;
  const matmul = opts['skip-matmul'] ? [] : await benchMatmul(device, tokens);
  const best = matmul.reduce((top, row) => (row.gflops > (top?.gflops ?? 0) ? row : top), matmul[0]);
  // The step's variant: least total time over the step's shapes (a small autotune).
  const totalTime = (t: MatmulTile) =>
    matmul.filter((r) => r.tile === tileName(t)).reduce((sum, r) => sum + r.seconds, 0);
  const untimed = summary.isFallbackAdapter ? CPU_MATMUL_TILE : GPU_MATMUL_CANDIDATES[0];
  const stepTile = matmul.length ? TILES.reduce((a, b) => (totalTime(b) < totalTime(a) ? b : a)) : untimed;
  const step = await benchStep(device, stepTile, opts.tune ?? !summary.isFallbackAdapter);
  const flops = usefulFlops(config, tokens, rank);
  const stepGflops = flops.total / step.seconds / 1e9;
  const report = {
    adapter: {
      vendor: summary.vendor,
      architecture: summary.architecture,
      description: summary.description,
      fallback: summary.isFallbackAdapter,
    },
    workload: {
      model: 'SmolLM2-135M shape',
      layers: config.numLayers,
      batch,
      seq,
      rank,
      targets: 'all seven',
      weights: opts.f16 ? 'fp16 matrices' : 'fp32',
    },
    bestMatmul: best ?? null,
    matmul,
    step: {
      matmulVariant: step.tunedShapes ? `per shape (${step.tunedShapes} shapes tuned)` : tileName(stepTile),
      matmulChoices: step.matmulChoices,
      secondsPerStep: step.seconds,
      tokensPerSecond: tokens / step.seconds,
      usefulGflop: flops.total / 1e9,
      usefulGflopsPerSecond: stepGflops,
      fractionOfBestMatmul: best ? stepGflops / best.gflops : null,
      gpuBytesAllocated: step.bytes,
      dispatchesPerStep: step.dispatches,
      loraParams: step.loraParams,
      losses: step.losses,
      profile: step.profile,
    },
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const a = report.adapter;
    console.log(`Adapter: ${a.vendor} ${a.architecture} ${a.description}${a.fallback ? ' (software)' : ''}`);
    console.log('\n| matmul shape | tile (per thread / workgroup) | GFLOP/s |\n|---|---|---|');
    for (const row of matmul) console.log(`| ${row.shape} | ${row.tile} | ${row.gflops.toFixed(2)} |`);
    const s = report.step;
    console.log(
      `\nLoRA step (${config.numLayers} layers, batch ${batch}, seq ${seq}, r ${rank}, matmul ${s.matmulVariant}):`,
    );
    console.log(
      '| s/step | tokens/s | useful GFLOP | useful GFLOP/s | / best matmul | GPU MiB | dispatches |\n|---|---|---|---|---|---|---|',
    );
    console.log(
      `| ${s.secondsPerStep.toFixed(3)} | ${s.tokensPerSecond.toFixed(1)} | ${s.usefulGflop.toFixed(2)} | ${s.usefulGflopsPerSecond.toFixed(2)} | ${s.fractionOfBestMatmul === null ? '-' : `${(100 * s.fractionOfBestMatmul).toFixed(0)}%`} | ${(s.gpuBytesAllocated / 2 ** 20).toFixed(0)} | ${s.dispatchesPerStep} |`,
    );
    console.log(`losses: ${s.losses.map((l) => l.toFixed(5)).join(' → ')}`);
    if (s.profile.length) {
      console.log('\n| kernel | dispatches | GPU ms |\n|---|---|---|');
      for (const k of s.profile) console.log(`| ${k.label} | ${k.dispatches} | ${k.milliseconds.toFixed(2)} |`);
    }
    console.log(`\n${JSON.stringify(report)}`);
  }
  device.destroy();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

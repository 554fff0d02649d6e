import { createStorageBuffer } from '../../workers/engine/gpu/buffers';
import type { Op } from '../../workers/engine/gpu/ops';
import { type KernelTime, profileOps } from '../../workers/engine/gpu/profile';
import { Decoder } from '../../workers/engine/model/decoder';
import { generate } from '../../workers/engine/model/generate';
import type { EngineKernels } from '../../workers/engine/model/kernels';
import type { GpuWeights } from '../../workers/engine/model/weights';
import { timeOps } from './measure-matmul';
import { peerTokens } from './peer-workload';

export interface DecodeResult {
  promptTokens: number;
  /** The prompt (all but its last token) run into the empty cache in one pass (Decoder.prefill), warm. */
  prefillTokensPerSecond: number;
  decodedTokens: number;
  tokensPerSecond: number;
  /** Bytes of weights each decoded token reads: every matrix once (batch 1), the tied LM head included. */
  bytesPerToken: number;
  copyBytesPerSecond: number;
  /** What decoding would reach if reading the weights were all it did: copy bandwidth / bytes per token. */
  memoryBoundTokensPerSecond: number;
  /** Kernel dispatches per token: on GPUs, each costs launch time whatever its work. */
  dispatchesPerToken: number;
  /** GPU time per kernel of one decoded token, when profiled. */
  profile: KernelTime[];
}

/**
 * Generation with the key-value cache over the base weights: a prompt from the peers' token stream prefilled in one
 * pass (timed again on its own after), then `count` tokens decoded greedily as the Compare step decodes them
 * (model/generate.ts: drawn on the GPU, each step submitted before the one before it is read back).
 */
export async function measureDecode(
  device: GPUDevice,
  kernels: EngineKernels,
  weights: GpuWeights,
  { prompt: promptLength, count, profile }: { prompt: number; count: number; profile: boolean },
  log: (line: string) => void,
): Promise<DecodeResult> {
  const prompt = peerTokens(weights.config.vocabSize, 1, promptLength).tokens[0];
  const decoder = new Decoder(device, kernels, weights, null, promptLength + count + 1);
  const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stopIds: [] };
  const { tokensPerSecond } = await generate(decoder, prompt, { ...greedy, maxNewTokens: count });
  // Again, now that generating has compiled every kernel: the prompt's pass alone.
  decoder.reset();
  const started = performance.now();
  decoder.prefill([prompt.slice(0, -1)]);
  await decoder.idle();
  const prefillTokensPerSecond = (prompt.length - 1) / Math.max(1e-9, (performance.now() - started) / 1000);
  const kernelTimes = profile ? await profileOps(device, decoder.ops) : [];
  const dispatchesPerToken = decoder.ops.filter((op) => op.kind === 'dispatch').length;
  decoder.destroy();
  const copyBytesPerSecond = await copyBandwidth(device);
  const bytesPerToken = weights.byteLength;
  const result = {
    promptTokens: promptLength,
    prefillTokensPerSecond,
    decodedTokens: count,
    tokensPerSecond,
    bytesPerToken,
    copyBytesPerSecond,
    memoryBoundTokensPerSecond: copyBytesPerSecond / bytesPerToken,
    dispatchesPerToken,
    profile: kernelTimes,
  };
  log(
    `decode: ${result.tokensPerSecond.toFixed(2)} tokens/s, memory-bound ${result.memoryBoundTokensPerSecond.toFixed(1)}`,
  );
  return result;
}

/**
 * Bytes per second of a buffer-to-buffer copy (it reads and writes every byte): the bandwidth the adapter reaches,
 * the best of three timings, since a software adapter's figure swung from 12 to 19 GB/s between runs.
 */
async function copyBandwidth(device: GPUDevice): Promise<number> {
  const bytes = 64 * 2 ** 20;
  const [a, b] = [createStorageBuffer(device, bytes), createStorageBuffer(device, bytes)];
  const copy: Op = { kind: 'copy', source: a, target: b, byteLength: bytes };
  let seconds = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) seconds = Math.min(seconds, await timeOps(device, [copy]));
  a.destroy();
  b.destroy();
  return (2 * bytes) / seconds;
}

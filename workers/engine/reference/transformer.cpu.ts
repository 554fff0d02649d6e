/**
 * The float64 CPU reference of the whole model: forward, loss and backward of a llama / qwen2 / qwen3 decoder with
 * optional LoRA adapters, as Hugging Face transformers + PEFT compute them (they in fp32, we in float64), to check the
 * GPU engine. Each operation is its kernel's CPU twin (kernels/*.cpu.ts), itself checked against finite differences.
 * Parameters: model.cpu.ts; one layer forward and backward: layer.cpu.ts.
 *
 * Notation: B batch rows, T tokens per row, N = B * T positions, D hiddenSize, V vocabSize. Position n = b * T + t.
 */
import type { ModelConfig } from '../../../core/model-config';
import { crossEntropyCpu } from '../kernels/cross-entropy.cpu';
import { embeddingBackwardCpu, embeddingCpu } from '../kernels/embedding.cpu';
import { scoreHeadBackwardCpu, scoreHeadCpu } from '../kernels/score-head.cpu';
import {
  accumulate,
  type Dims,
  type LayerCache,
  type LinearCache,
  layerBackward,
  layerForward,
  linearBackward,
  linearForward,
  type NormCache,
  type RotaryTables,
  rmsNormBackward,
  rmsNormForward,
  rotaryTables,
} from './layer.cpu';
import { buildModel, Gradients, type Model, type ReferenceLora } from './model.cpu';

export { loraScale, type ReferenceLora } from './model.cpu';

export interface ReferenceResult {
  loss: number;
  /** d loss / d A and d B for each LoRA module, same keys and layouts as ReferenceLora.modules */
  loraGrads: Map<string, { A: Float64Array; B: Float64Array }>;
  /**
   * With `full`: d loss / d every base weight, under its checkpoint key (tied embeddings: one grad for
   * model.embed_tokens.weight holding both uses). Empty otherwise.
   */
  weightGrads: Map<string, Float64Array>;
}

export interface ReferenceOptions {
  /** Also differentiate the base weights (they are frozen otherwise, as in LoRA training). */
  full?: boolean;
}

/** Labels equal to this are skipped by the loss (PyTorch's cross_entropy ignore_index). */
export const IGNORE_INDEX = -100;

/** Mean cross-entropy of the model on `tokens` (labels default to the tokens, shifted inside as HF does). */
export function referenceForward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  labels?: number[][],
): number {
  const model = buildModel(config, weights, lora, null);
  return modelForward(model, readBatch(config, tokens, labels)).loss;
}

/** The logits of every position, [B * T, V]. */
export function referenceBatchLogits(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
): Float64Array {
  const model = buildModel(config, weights, lora, null);
  const { hidden, cache } = hiddenForward(model, readBatch(config, tokens, undefined, false));
  return linearForward(model.lmHead, hidden, cache.dims.N).y;
}

/** The loss and its gradients: LoRA A and B always, every base weight too with `full`. */
export function referenceForwardBackward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  labels?: number[][],
  options: ReferenceOptions = {},
): ReferenceResult {
  const grads = new Gradients(options.full ?? false);
  const model = buildModel(config, weights, lora, grads);
  const { loss, cache } = modelForward(model, readBatch(config, tokens, labels));
  modelBackward(model, cache);
  return { loss, loraGrads: grads.lora, weightGrads: grads.weights };
}

export interface ReferenceRewardResult {
  /** Mean Bradley-Terry loss over the pairs (rows 2i chosen, 2i + 1 rejected). */
  loss: number;
  /** Each row's score. */
  scores: Float64Array;
  loraGrads: Map<string, { A: Float64Array; B: Float64Array }>;
  /** d loss / d the score head [D]. */
  headGrad: Float64Array;
}

/**
 * A reward model: the same transformer up to model.norm, a score head `head` [D] read at `positions[b]` (the
 * position within row b), and the Bradley-Terry loss softplus(r_rejected - r_chosen) averaged over the pairs.
 */
export function referenceRewardForwardBackward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  positions: number[],
  head: Float64Array,
): ReferenceRewardResult {
  const grads = new Gradients(false);
  const model = buildModel(config, weights, lora, grads);
  const batch = readBatch(config, tokens, undefined, false);
  const { hidden, cache } = hiddenForward(model, batch);
  const { B, T } = cache.dims;
  if (B % 2 !== 0 || positions.length !== B) throw new Error('reference: reward rows come in pairs, one position each');
  const rows = positions.map((t, b) => b * T + t); // [B] the hidden row each sequence is scored at
  const scores = scoreHeadCpu(hidden, head, rows);
  const pairs = B / 2;
  let loss = 0;
  const dScores = new Float64Array(B);
  for (let p = 0; p < pairs; p++) {
    const margin = scores[2 * p] - scores[2 * p + 1];
    loss += Math.log1p(Math.exp(-margin)) / pairs;
    const d = -1 / (1 + Math.exp(margin)) / pairs; // d loss / d r_chosen = -sigmoid(-margin) / pairs
    dScores[2 * p] = d;
    dScores[2 * p + 1] = -d;
  }
  const { dx: dHidden, dw: headGrad } = scoreHeadBackwardCpu(hidden, head, rows, dScores);
  hiddenBackward(model, cache, dHidden);
  return { loss, scores, loraGrads: grads.lora, headGrad };
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs: tokens and their shifted targets.

interface Batch {
  B: number;
  T: number;
  /** [N] token ids */
  tokens: Int32Array;
  /** [N] the label each position predicts (already shifted: labels[b][t + 1]), or IGNORE_INDEX */
  targets: Int32Array;
  /** how many targets are not IGNORE_INDEX: the loss is their mean */
  count: number;
}

/** Tokens and their shifted targets; `needTargets` false for a model read through a head rather than the LM head. */
function readBatch(config: ModelConfig, tokens: number[][], labels: number[][] | undefined, needTargets = true): Batch {
  const B = tokens.length;
  if (B === 0) throw new Error('reference: tokens is empty (expected [batch][seq])');
  const T = tokens[0].length;
  if (T === 0) throw new Error('reference: tokens[0] is empty');
  checkRows('tokens', tokens, B, T);
  if (labels) checkRows('labels', labels, B, T);
  const V = config.vocabSize;
  const flat = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const id = tokens[b][t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`reference: token ${id} at [${b}][${t}] is out of range [0, ${V})`);
      }
      flat[b * T + t] = id;
      const label = (labels ?? tokens)[b][t];
      if (label !== IGNORE_INDEX && (!Number.isInteger(label) || label < 0 || label >= V)) {
        throw new Error(`reference: label ${label} at [${b}][${t}] is neither ${IGNORE_INDEX} nor in [0, ${V})`);
      }
      // HF's shift: the logits at t predict the label at t + 1; the label at t = 0 is never predicted.
      if (t > 0 && label !== IGNORE_INDEX) {
        targets[b * T + t - 1] = label;
        count++;
      }
    }
  }
  if (count === 0 && needTargets) {
    throw new Error(`reference: no label to predict (all labels after position 0 are ${IGNORE_INDEX}, or seq is 1)`);
  }
  return { B, T, tokens: flat, targets, count };
}

function checkRows(name: string, rows: number[][], B: number, T: number): void {
  if (rows.length !== B) throw new Error(`reference: ${name} has ${rows.length} rows, expected ${B}`);
  rows.forEach((row, b) => {
    if (row.length !== T) throw new Error(`reference: ${name}[${b}] has ${row.length} tokens, expected ${T} (ragged)`);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The whole model: embedding → layers → model.norm (the hidden states a head reads) → lm_head → shifted mean
// cross-entropy.

interface HiddenCache {
  batch: Batch;
  dims: Dims;
  /** Each layer's rotary tables (Gemma's local layers have their own). */
  rope: RotaryTables[];
  layers: LayerCache[];
  finalNorm: NormCache;
}

interface ModelCache extends HiddenCache {
  /** lm_head's input: the final norm's output [N, D] */
  lmHead: LinearCache;
  /** [N, V] d loss / d logits */
  dLogits: Float64Array;
}

/** Embedding, layers and model.norm: the final hidden states [N, D]. */
function hiddenForward(model: Model, batch: Batch): { hidden: Float64Array; cache: HiddenCache } {
  const { config } = model;
  const D = config.hiddenSize;
  const N = batch.B * batch.T;
  const dims: Dims = { B: batch.B, T: batch.T, N, D, H: config.numHeads, KV: config.numKvHeads, hd: config.headDim };
  const global = rotaryTables(model.invFreq, batch.T);
  const local = model.localInvFreq && rotaryTables(model.localInvFreq, batch.T);
  const rope = model.layers.map((layer) => (layer.sliding && local ? local : global));

  // x [N, D] = E[tokens] · s: the residual stream (s = Gemma's embedding scale, else 1)
  const scale = model.config.gemma?.embedScale ?? 1;
  let x: Float64Array = embeddingCpu(batch.tokens, model.embed.value, D).map((v) => v * scale);
  const layers: LayerCache[] = [];
  for (const [l, layer] of model.layers.entries()) {
    const { out, cache } = layerForward(model, layer, x, dims, rope[l]);
    layers.push(cache);
    x = out;
  }
  const finalNorm = rmsNormForward(x, model.finalNorm.value, N, D, config.rmsNormEps);
  return { hidden: finalNorm.y, cache: { batch, dims, rope, layers, finalNorm: finalNorm.cache } };
}

function modelForward(model: Model, batch: Batch): { loss: number; cache: ModelCache } {
  const { hidden, cache } = hiddenForward(model, batch);
  const lmHead = linearForward(model.lmHead, hidden, cache.dims.N); // logits [N, V]
  // loss = Σ_n w_n (lse_n - logits[n, target_n]), w_n = 1 / count where counted, 0 elsewhere: the batch's mean.
  const weights = Float64Array.from(batch.targets, (target) => (target === IGNORE_INDEX ? 0 : 1 / batch.count));
  const ce = crossEntropyCpu(lmHead.y, batch.targets, weights, model.config.vocabSize);
  const loss = ce.loss.reduce((sum, l) => sum + l, 0);
  return { loss, cache: { ...cache, lmHead: lmHead.cache, dLogits: ce.dLogits } };
}

function modelBackward(model: Model, cache: ModelCache): void {
  hiddenBackward(model, cache, linearBackward(model.lmHead, cache.lmHead, cache.dLogits, cache.dims.N));
}

/** From d loss / d the final hidden states back through model.norm, the layers and the embedding. */
function hiddenBackward(model: Model, cache: HiddenCache, dHidden: Float64Array): void {
  const { batch, dims, rope } = cache;
  const { N, D } = dims;
  let dx = rmsNormBackward(model.finalNorm, cache.finalNorm, dHidden, N, D);
  for (let l = model.layers.length - 1; l >= 0; l--) {
    dx = layerBackward(model, model.layers[l], cache.layers[l], dx, dims, rope[l]);
  }
  // The embedding lookup scatters back, scaled: each position's gradient lands on its token's row.
  const scale = model.config.gemma?.embedScale ?? 1;
  const dEmbed = embeddingBackwardCpu(batch.tokens, dx, model.config.vocabSize, D);
  if (model.embed.grad)
    accumulate(
      model.embed.grad,
      dEmbed.map((v) => v * scale),
    );
}

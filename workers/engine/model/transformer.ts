import { shortDims } from '../../../core/model-config';
import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import { type Op, releaseOps } from '../gpu/ops';
import { buildTokenIndex } from '../kernels/embedding';
import type { Slabs } from '../kernels/rmsnorm';
import type { EngineKernels } from './kernels';
import { layerBackward, layerForward, type StepContext } from './layer';
import { Linear } from './linear';
import type { GpuLora } from './lora';
import { LoraPlan, layerModules } from './lora-plan';
import { type LogitsSlice, lossBackward, lossForward, sliceVocabulary } from './loss';
import { allocateStepBuffers, type Kept, type StepBuffers, type StepShape } from './step-buffers';
import type { GpuWeights } from './weights';

export type { StepShape } from './step-buffers';

/**
 * One training step of a Llama-family (or Gemma) decoder, recorded once for a [batch, seq] shape as GPU ops and
 * replayed:
 *   x = embed(ids) (· Gemma's √d)           [N, d]      N = batch · seq
 *   x = layer_l(x) for each layer           (layer.ts: each layer's forward beside its backward)
 *   xf = rmsnorm(x);  loss = CE(xf · Eᵀ)     (loss.ts, a vocabulary slice at a time)
 * then the backward in reverse, into LoRA's gradient buffer (and in full mode one per weight), accumulated across
 * micro-batches until `zeroGradOps` clears them. With `recompute` only each layer's input is kept and its forward
 * replayed just before its backward: a third more work for a fraction of the memory.
 */

export interface StepOptions {
  /** Gradients for every base weight too (full-parameter training); the adapter may then be null. */
  full: boolean;
  /** Largest logits chunk in bytes (tokens x vocabulary rows x 4); the LM head and loss run chunk by chunk. */
  maxLogitsBytes?: number;
  /**
   * 'next-token' (default): the forward ends in the LM head and the loss, the backward starts from it. 'hidden':
   * the forward ends at the final norm (`finalHidden`) and the backward starts from whatever a head wrote into
   * `finalHiddenGrad` (a reward model's score head), with no vocabulary-sized work at all.
   */
  output?: 'next-token' | 'hidden';
  /** The forward only: a model read, not trained (a KL reference, a reward model), maybe with neither adapter nor full. */
  forwardOnly?: boolean;
  /** Gradient checkpointing: keep each layer's input only (dropout masks are drawn again from the same seed). */
  recompute?: boolean;
  /**
   * Forward only: each layer's rotated keys and values copied into these caches, [batch, maxLength, KV * hd] as a
   * decoder keeps them (model/decoder.ts), so decoding goes on after the tokens: a prompt prefilled in one pass.
   */
  cacheTo?: KeyValueCaches;
}

/**
 * A decoder's key-value caches: each layer's keys and values, [batch, length, KV * hd], position p at row
 * p % length (a ring where length is a local layer's window, shorter than the conversation's maxLength).
 */
export interface KeyValueCaches {
  layers: ReadonlyArray<{ k: GPUBuffer; v: GPUBuffer; length: number }>;
  maxLength: number;
}

export class TransformerStep {
  readonly tokens: number;
  readonly output: 'next-token' | 'hidden';
  /** d(loss) / d(weight) for every base weight in full mode, under the weights' keys. */
  readonly weightGrads: Map<string, GPUBuffer[]> | null;
  readonly forwardOps: Op[] = [];
  readonly backwardOps: Op[] = [];
  readonly zeroGradOps: Op[] = [];
  private readonly buffers: GPUBuffer[] = [];
  private readonly b: StepBuffers;
  private readonly slices: LogitsSlice[];
  private readonly kept: Kept;
  private readonly cacheTo: KeyValueCaches | null;
  private readonly c: StepContext;
  /** The batch's targets as setBatch wrote them (position t predicts targets[t]; -100 ignored). */
  private targetsCpu = new Int32Array(0);

  constructor(
    private readonly device: GPUDevice,
    private readonly k: EngineKernels,
    private readonly w: GpuWeights,
    private readonly lora: GpuLora | null,
    readonly shape: StepShape,
    options: StepOptions,
  ) {
    const c = w.config;
    const N = shape.batch * shape.seq;
    this.tokens = N;
    this.output = options.output ?? 'next-token';
    if (shape.seq > c.maxPositionEmbeddings) {
      throw new Error(
        `sequence length ${shape.seq} exceeds the model's max_position_embeddings ${c.maxPositionEmbeddings}`,
      );
    }
    if (!lora && !options.full && !options.forwardOnly) {
      throw new Error('a training step needs a LoRA adapter or full-parameter mode');
    }
    if (options.full && w.projectionFormat !== 'f32') {
      throw new Error(
        `full-parameter training needs fp32 weights (they are trained), not ${w.projectionFormat}: upload them without halfMatrices or base`,
      );
    }
    this.cacheTo = options.cacheTo ?? null;
    if (this.cacheTo && !options.forwardOnly) throw new Error('only a forward-only step fills key-value caches');
    if (this.cacheTo && shape.seq > this.cacheTo.maxLength) {
      throw new Error(`${shape.seq} tokens do not fit key-value caches of ${this.cacheTo.maxLength}`);
    }

    this.weightGrads = options.full ? w.zerosLike(device, 'grad') : null;
    if (this.weightGrads) for (const list of this.weightGrads.values()) this.buffers.push(...list);
    const maxLogits = options.maxLogitsBytes ?? Math.min(64 * 2 ** 20, device.limits.maxStorageBufferBindingSize);
    this.slices =
      this.output === 'next-token' ? sliceVocabulary(w.lmHead, Math.max(1, Math.floor(maxLogits / (N * 4)))) : [];
    this.kept = options.forwardOnly ? 'none' : options.recompute ? 'inputs' : 'all';
    this.b = allocateStepBuffers(
      (bytes, label) => this.alloc(bytes, label),
      (data, label) => {
        const buffer = this.alloc(data.byteLength, label);
        device.queue.writeBuffer(buffer, 0, data);
        return buffer;
      },
      {
        config: c,
        tokens: N,
        seq: shape.seq,
        kept: this.kept,
        full: options.full,
        dropout: Boolean(lora && lora.settings.loraDropout > 0),
        maxSlice: Math.max(0, ...this.slices.map((slice) => slice.rows)),
        rank: lora?.settings.r ?? 0,
        modulesPerLayer: Array.from({ length: c.numLayers }, (_, l) => layerModules(lora, l).length),
      },
    );
    const linear = new Linear(k, w, N);
    const { layers, d, inputs } = this.b;
    const xa = (layer: number) => layers[layer].loraXa;
    const loraBuffers = { xa, dxa: d?.dxa ?? null, dropoutState: inputs.dropoutState };
    const plan = new LoraPlan(k, lora, linear, loraBuffers, device.limits.maxStorageBuffersPerShaderStage);
    const grad = this.weightGrads ? (key: string, index = 0) => this.grad(key, index) : null;
    this.c = { k, w, shape, kept: this.kept, buffers: this.b, lora: plan, linear, grad };
    this.record();
    k.track(this);
  }

  /**
   * Records the ops again over the same buffers, after the kernels' matmul tuner chose variants for this step's
   * products. The op lists are refilled in place, so whoever holds them runs the new plan.
   */
  rerecord(): void {
    releaseOps([...this.forwardOps, ...this.backwardOps]);
    for (const ops of [this.forwardOps, this.backwardOps, this.zeroGradOps]) ops.length = 0;
    this.record();
  }

  get hiddenSize(): number {
    return this.w.config.hiddenSize;
  }

  /** The final normed hidden states [N, d] after the forward ops ran: a head's input in 'hidden' mode. */
  get finalHidden(): GPUBuffer {
    return this.b.s.xf;
  }

  /** d(loss)/d(finalHidden) [N, d]: in 'hidden' mode a head writes it before the backward ops run. */
  get finalHiddenGrad(): GPUBuffer {
    return this.b.s.dxf;
  }

  /** Bytes of every buffer this step allocated (activations, scratch, inputs, full-mode gradients). */
  get byteLength(): number {
    return this.buffers.reduce((total, b) => total + b.size, 0);
  }

  /**
   * Loads a batch. tokens: [batch][seq]; labels likewise, -100 where ignored, default = tokens. As in Hugging
   * Face, position t's logits predict labels[t + 1]; the loss is the mean over counted targets in the batch, or
   * the sum over them divided by `lossDenominator`: with the count of a whole accumulated step, micro-batches add
   * up to that step's token mean. In 'hidden' output mode the labels are not used.
   */
  setBatch(tokens: number[][], labels?: number[][], lossDenominator?: number): void {
    this.writeBatch(tokens, labels ?? tokens, { name: 'label', shift: 1 }, lossDenominator);
  }

  /**
   * Loads a batch whose targets are given per position, unshifted: position t's logits predict targets[t], so the
   * last position may predict a token that is not in the batch (a stream cut into windows, as benchmarks feed it).
   * -100 ignores a position; the loss is as in `setBatch`.
   */
  setBatchTargets(tokens: number[][], targets: number[][], lossDenominator?: number): void {
    this.writeBatch(tokens, targets, { name: 'target', shift: 0 }, lossDenominator);
  }

  /** Position t predicts rows[b][t + shift] (-100 past the row's end); errors name the value as `name`. */
  private writeBatch(
    tokens: number[][],
    rows: number[][],
    { name, shift }: { name: string; shift: number },
    lossDenominator: number | undefined,
  ): void {
    const { batch, seq } = this.shape;
    const vocab = this.w.config.vocabSize;
    if (tokens.length !== batch || tokens.some((row) => row.length !== seq)) {
      throw new Error(`tokens must be ${batch} rows of ${seq} ids`);
    }
    if (rows.length !== batch || rows.some((row) => row.length !== seq)) {
      throw new Error(`${name}s must have the shape of tokens: ${batch} rows of ${seq}`);
    }
    const ids = new Uint32Array(this.tokens);
    const targets = new Int32Array(this.tokens).fill(-100);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        const id = tokens[b][t];
        if (!Number.isInteger(id) || id < 0 || id >= vocab) {
          throw new Error(`token ${id} at [${b}][${t}] is outside the vocabulary (0..${vocab - 1})`);
        }
        ids[b * seq + t] = id;
      }
    }
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t + shift < seq; t++) {
        const next = rows[b][t + shift];
        if (next === -100) continue;
        if (!Number.isInteger(next) || next < 0 || next >= vocab) {
          throw new Error(
            `${name} ${next} at [${b}][${t + shift}] is outside the vocabulary (0..${vocab - 1}) and not -100`,
          );
        }
        targets[b * seq + t] = next;
      }
    }
    this.targetsCpu = targets;
    const counted = targets.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0);
    if (counted === 0 && this.output === 'next-token')
      throw new Error(`the batch has no ${name} to predict (every ${name} is -100)`);
    const denominator = lossDenominator ?? counted;
    const weights = Float32Array.from(targets, (t) => (t >= 0 ? 1 / denominator : 0));
    const q = this.device.queue;
    q.writeBuffer(this.b.inputs.ids, 0, ids);
    q.writeBuffer(this.b.inputs.targets, 0, targets);
    q.writeBuffer(this.b.inputs.weightsPerToken, 0, weights);
    if (this.b.inputs.tokenIndex) q.writeBuffer(this.b.inputs.tokenIndex, 0, buildTokenIndex(ids));
  }

  /**
   * Replaces the batch's per-position loss weights (after setBatch, before the ops run): the loss becomes
   * Σ weight[t] · CE[t] over counted positions, and the backward differentiates exactly that. Objectives built on
   * token log-probabilities (DPO) run the forward with weights of 1, read the per-token losses, then set the
   * weights their gradient needs and run the backward. Ignored positions keep weight 0 whatever is given.
   */
  setLossWeights(weights: Float32Array): void {
    if (weights.length !== this.tokens) throw new Error(`loss weights must be ${this.tokens} values, one per position`);
    const masked = Float32Array.from(weights, (w, t) => (this.targetsCpu[t] >= 0 ? w : 0));
    this.device.queue.writeBuffer(this.b.inputs.weightsPerToken, 0, masked);
  }

  /** Each position's weighted loss (weight · CE, 0 where ignored), after the forward ops ran. */
  async readTokenLosses(): Promise<Float32Array> {
    return readFloat32(this.device, this.b.inputs.lossRows, this.tokens * 4);
  }

  /**
   * Draws new LoRA dropout masks for the next run of the ops (call once per step when training); null turns
   * dropout off, for evaluation.
   */
  setDropoutSeed(seed: number | null): void {
    const state = seed === null ? Uint32Array.of(0, 0) : Uint32Array.of(seed >>> 0, 1);
    if (this.b.inputs.dropoutState) this.device.queue.writeBuffer(this.b.inputs.dropoutState, 0, state);
  }

  /**
   * The logits at token position `position` (batch-major) after the forward ops ran, when the whole vocabulary
   * fits one logits slice (small vocabularies): enough to sample from a tiny model without a decoding engine.
   */
  async readLogits(position: number): Promise<Float32Array> {
    if (this.slices.length !== 1) throw new Error('readLogits needs the vocabulary in one logits slice');
    const vocab = this.slices[0].rows;
    const all = await readFloat32(this.device, this.b.s.logits, this.tokens * vocab * 4);
    return all.slice(position * vocab, (position + 1) * vocab);
  }

  /** The batch's mean loss, after the forward ops ran (summed in float64 on the CPU). */
  async readLoss(): Promise<number> {
    const rows = await readFloat32(this.device, this.b.inputs.lossRows, this.tokens * 4);
    let sum = 0;
    for (const v of rows) sum += v;
    return sum;
  }

  destroy(): void {
    this.k.untrack(this);
    for (const b of this.buffers) b.destroy();
    releaseOps([...this.forwardOps, ...this.backwardOps]);
  }

  private alloc(bytes: number, label: string): GPUBuffer {
    const buffer = createStorageBuffer(this.device, bytes, label);
    this.buffers.push(buffer);
    return buffer;
  }

  private grad(key: string, index = 0): GPUBuffer {
    const list = this.weightGrads?.get(key);
    if (!list) throw new Error(`no gradient buffer for ${key}`);
    return list[index];
  }

  // ---- recording --------------------------------------------------------------------------------------------

  private record(): void {
    this.recordForward();
    if (this.kept === 'none') return;
    if (this.lora) this.zeroGradOps.push({ kind: 'clear', buffer: this.lora.grads });
    for (const list of this.weightGrads?.values() ?? []) {
      for (const buffer of list) this.zeroGradOps.push({ kind: 'clear', buffer });
    }
    this.recordBackward();
  }

  private recordForward(): void {
    const ops = this.forwardOps;
    const { k, w } = this;
    const N = this.tokens;
    const { d, eps } = shortDims(w.config);
    const { inputs, layers, s } = this.b;
    // x [N, d] = E[ids] (· Gemma's √d), a vocabulary chunk at a time
    const scale = w.config.gemma?.embedScale;
    for (const { buffer, first, rows } of w.embed) {
      const embed = { ids: inputs.ids, chunk: buffer, x: layers[0].xIn, format: w.tableFormat };
      ops.push(k.embedding.forwardOp({ ...embed, tokens: N, dim: d, first, rows, scale }));
    }
    // x = layer_l(x); each layer's last product may leave its output in partial sums for the next norm to add.
    let residual: Slabs | undefined;
    for (let l = 0; l < layers.length; l++) {
      residual = layerForward(this.c, ops, l, { residual });
      if (this.cacheTo) ops.push(...this.cacheCopies(l, this.cacheTo));
    }
    // xf [N, d] = rmsnorm(xOut + residual)
    const finalNorm = { x: s.xOut, w: w.finalNorm, y: s.xf, rstd: s.rstdF, rows: N, dim: d, eps };
    ops.push(k.rmsnorm.forwardOp({ ...finalNorm, xSlabs: residual }));
    if (this.output === 'next-token') lossForward(this.c, ops, this.slices);
  }

  private recordBackward(): void {
    const ops = this.backwardOps;
    const { k, w } = this;
    const N = this.tokens;
    const d = w.config.hiddenSize;
    const { inputs, layers, s, d: g } = this.b;
    if (!g) throw new Error('a forward-only step has no backward');
    // dxf [N, d] from the loss (in 'hidden' mode a head wrote it)
    lossBackward(this.c, ops, this.slices);
    // dx [N, d] = rmsnorm'(dxf): also the last down_proj's output gradient (Gemma's is its own norm's)
    const finalNorm = { x: s.xOut, w: w.finalNorm, rstd: s.rstdF, rows: N, dim: d };
    const down = w.config.gemma ? undefined : this.c.lora.residualOut(layers.length - 1, 'down_proj');
    ops.push(k.rmsnorm.backwardOp({ ...finalNorm, dy: s.dxf, dx: g.dx, lowRankOut: down }));
    if (this.weightGrads) {
      ops.push(k.rmsnorm.weightGradOp({ ...finalNorm, dy: s.dxf, dw: this.grad('model.norm.weight') }));
    }
    for (let l = layers.length - 1; l >= 0; l--) layerBackward(this.c, ops, l);
    // dE[ids] += dx (· Gemma's √d) (full mode)
    if (this.weightGrads && inputs.tokenIndex) {
      const scale = w.config.gemma?.embedScale;
      for (const [i, { first, rows }] of w.embed.entries()) {
        const dChunk = this.grad('model.embed_tokens.weight', i);
        const shape = { tokens: N, dim: d, first, rows, scale };
        ops.push(k.embedding.backwardOp({ index: inputs.tokenIndex, dx: g.dx, dChunk, ...shape }));
      }
    }
  }

  /**
   * Copies of layer l's rotated keys and values, [batch, seq, KV * hd], into each row's cache: position p at row
   * p % length, the last `length` positions only (a ring: one run of rows, or two where it wraps).
   */
  private cacheCopies(l: number, caches: KeyValueCaches): Op[] {
    const { batch, seq } = this.shape;
    const { kr, v } = this.b.layers[l];
    const width = this.w.config.numKvHeads * this.w.config.headDim * 4;
    const cache = caches.layers[l];
    const first = Math.max(0, seq - cache.length);
    // [position, row, count] of each run.
    const split = first % cache.length;
    const runs: [number, number, number][] =
      split === 0
        ? [[first, 0, seq - first]]
        : [
            [first, split, cache.length - split],
            [first + cache.length - split, 0, seq - first - (cache.length - split)],
          ];
    return Array.from({ length: batch }, (_, b) =>
      runs.flatMap(([position, row, count]) =>
        [
          [kr, cache.k],
          [v, cache.v],
        ].map(
          ([source, target]): Op => ({
            kind: 'copy',
            source,
            target,
            byteLength: count * width,
            sourceOffset: (b * seq + position) * width,
            targetOffset: (b * cache.length + row) * width,
          }),
        ),
      ),
    ).flat();
  }
}

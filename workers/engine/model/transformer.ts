import { type Projection, projectionKey, projectionShape, shortDims } from '../../../core/model-config';
import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import { type Op, releaseOps } from '../gpu/ops';
import type { AttentionShape } from '../kernels/attention';
import { buildTokenIndex } from '../kernels/embedding';
import type { GroupedProduct } from '../kernels/grouped-matmul';
import type { LowRank, MatmulShape, OperandMask } from '../kernels/matmul';
import type { LowRankIn, LowRankOut, Slabs } from '../kernels/rmsnorm';
import type { Rotation } from '../kernels/rope';
import type { EngineKernels } from './kernels';
import type { GpuLora, LoraModule } from './lora';
import { ropeTables } from './rope-tables';
import type { GpuWeights, VocabChunk } from './weights';

/**
 * One training step's forward and backward pass of a Llama-family decoder, recorded once for a batch shape
 * ([batch, seq] tokens) as a list of GPU ops and replayed every step.
 *
 * Shapes: N = batch * seq tokens, d = hidden, f = intermediate, H / KV = query / key-value heads, hd = head dim,
 * G = H / KV (query heads per key-value head), r = LoRA rank, V = vocabulary.
 *
 * Activations kept for the backward, per layer: the residual stream entering it (xIn) and after attention
 * (xMid), both normed inputs with their rstd, q/k after rotary embeddings and v, the attention output with each
 * query's log-sum-exp, gate/up/activation, and each LoRA module's x A^T. Attention never stores its [seq, seq]
 * probabilities: the backward recomputes them from the log-sum-exp (kernels/attention.ts). With `recompute` (gradient
 * checkpointing) only each layer's xIn is kept: the backward replays the layer's forward into one shared set of
 * activations just before its own backward, a third more work for a fraction of the memory. A forward-only step
 * keeps nothing per layer.
 *
 * Gradients are accumulated into (LoRA's flat gradient buffer, and in full mode one gradient buffer per
 * weight): `zeroGradOps` clears them, so several micro-batches can add up before an optimizer step.
 */

export interface StepShape {
  batch: number;
  seq: number;
}

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
  /**
   * Record the forward only: a model read, not trained (the base model as a KL reference, a reward model scoring).
   * It may then have neither an adapter nor full-parameter gradients.
   */
  forwardOnly?: boolean;
  /**
   * Gradient checkpointing: keep only each layer's input and recompute its activations in the backward (the
   * dropout masks are drawn again from the same seed, so the gradients are the same).
   */
  recompute?: boolean;
  /**
   * Forward only: each layer's keys (after rotary embeddings) and values copied into these caches, one per layer,
   * [batch, maxLength, KV * hd] as a decoder keeps them (model/decoder.ts), so decoding goes on after the tokens:
   * a prompt prefilled in one pass instead of a decoding step per token.
   */
  cacheTo?: KeyValueCaches;
}

/** A decoder's key-value caches: each layer's keys and values, [batch, maxLength, KV * hd]. */
export interface KeyValueCaches {
  layers: ReadonlyArray<{ k: GPUBuffer; v: GPUBuffer }>;
  maxLength: number;
}

/** Which activations live per layer: all of them, only each layer's input (recompute), or none (forward only). */
type Kept = 'all' | 'inputs' | 'none';

interface LayerActivations {
  xIn: GPUBuffer; // [N, d]
  xn1: GPUBuffer; // [N, d]
  rstd1: GPUBuffer; // [N]
  qPre: GPUBuffer | null; // [N, H*hd] q before its per-head norm (qwen3)
  kPre: GPUBuffer | null; // [N, KV*hd]
  rstdQ: GPUBuffer | null; // [N*H]
  rstdK: GPUBuffer | null; // [N*KV]
  qr: GPUBuffer; // [N, H*hd] q after rotary embeddings
  kr: GPUBuffer; // [N, KV*hd] k after rotary embeddings
  v: GPUBuffer; // [N, KV*hd]
  attn: GPUBuffer; // [N, H*hd] attention output, input of o_proj
  lse: GPUBuffer; // [B, H, T] each query's log Σ exp of its attention scores
  xMid: GPUBuffer; // [N, d] residual after attention
  xn2: GPUBuffer; // [N, d]
  rstd2: GPUBuffer; // [N]
  gate: GPUBuffer; // [N, f]
  up: GPUBuffer; // [N, f]
  act: GPUBuffer; // [N, f] silu(gate) * up, input of down_proj
  /** x A^T of each LoRA module of this layer, [modules, N, r] (module by `loraOffset`); null without any. */
  loraXa: GPUBuffer | null;
}

/** The logits of vocabulary rows [first, first + rows), read from `chunk` at row offset `first - chunk.first`. */
interface LogitsSlice {
  chunkIndex: number;
  chunk: VocabChunk;
  first: number;
  rows: number;
}

/** The projections that add onto the residual stream, whose output gradient is the stream's gradient. */
const RESIDUAL_WRITERS: readonly Projection[] = ['o_proj', 'down_proj'];

export class TransformerStep {
  readonly tokens: number;
  readonly output: 'next-token' | 'hidden';
  private readonly buffers: GPUBuffer[] = [];
  private readonly layers: LayerActivations[] = [];
  private readonly ids: GPUBuffer;
  private readonly targets: GPUBuffer;
  private readonly weightsPerToken: GPUBuffer;
  private readonly tokenIndex: GPUBuffer | null;
  private readonly lossRows: GPUBuffer;
  private readonly slices: LogitsSlice[];
  /** d(loss) / d(weight) for every base weight in full mode, under the weights' keys. */
  readonly weightGrads: Map<string, GPUBuffer[]> | null;
  readonly forwardOps: Op[] = [];
  readonly backwardOps: Op[] = [];
  readonly zeroGradOps: Op[] = [];
  /** The step's dropout state ([seed, on], two u32), when the adapter has LoRA dropout. */
  private readonly dropoutState: GPUBuffer | null;
  private readonly kept: Kept;
  private readonly cacheTo: KeyValueCaches | null;
  /** The batch's targets as setBatch wrote them (position t predicts targets[t]; -100 ignored). */
  private targetsCpu = new Int32Array(0);
  /** LoRA weight-gradient products recorded but not yet emitted (see flushLoraGrads). */
  private loraGrads: GroupedProduct[] = [];

  // Scratch shared by all layers.
  private readonly s: Record<string, GPUBuffer> = {};

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
    if (options.full && w.halfMatrices) {
      throw new Error(
        'full-parameter training needs fp32 weights (they are trained): upload them without halfMatrices',
      );
    }

    this.ids = this.alloc(N * 4, 'token ids');
    this.targets = this.alloc(N * 4, 'targets');
    this.weightsPerToken = this.alloc(N * 4, 'target weights');
    this.lossRows = this.alloc(N * 4, 'loss per token');
    this.tokenIndex = options.full ? this.alloc((3 * N + 2) * 4, 'token index') : null;
    this.dropoutState = lora && lora.settings.loraDropout > 0 ? this.alloc(8, 'dropout state') : null;
    this.weightGrads = options.full ? w.zerosLike(device, 'grad') : null;
    if (this.weightGrads) for (const list of this.weightGrads.values()) this.buffers.push(...list);

    const maxLogits = options.maxLogitsBytes ?? Math.min(64 * 2 ** 20, device.limits.maxStorageBufferBindingSize);
    this.slices =
      this.output === 'next-token' ? sliceVocabulary(w.lmHead, Math.max(1, Math.floor(maxLogits / (N * 4)))) : [];
    this.kept = options.forwardOnly ? 'none' : options.recompute ? 'inputs' : 'all';
    this.cacheTo = options.cacheTo ?? null;
    if (this.cacheTo && !options.forwardOnly) throw new Error('only a forward-only step fills key-value caches');
    if (this.cacheTo && shape.seq > this.cacheTo.maxLength) {
      throw new Error(`${shape.seq} tokens do not fit key-value caches of ${this.cacheTo.maxLength}`);
    }
    this.allocateActivations();
    this.record();
    k.track(this);
  }

  private record(): void {
    this.recordForward();
    if (this.kept !== 'none') {
      this.recordZeroGrad();
      this.recordBackward();
    }
  }

  /**
   * Records the ops again over the same buffers: after the kernels' matmul tuner chose variants for the products
   * this step asked for (the kernels do it for every step alive when they tune). The op lists are refilled in
   * place, so whoever holds them runs the new plan.
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
    return this.s.xf;
  }

  /** d(loss)/d(finalHidden) [N, d]: in 'hidden' mode a head writes it before the backward ops run. */
  get finalHiddenGrad(): GPUBuffer {
    return this.s.dxf;
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
    q.writeBuffer(this.ids, 0, ids);
    q.writeBuffer(this.targets, 0, targets);
    q.writeBuffer(this.weightsPerToken, 0, weights);
    if (this.tokenIndex) q.writeBuffer(this.tokenIndex, 0, buildTokenIndex(ids));
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
    this.device.queue.writeBuffer(this.weightsPerToken, 0, masked);
  }

  /** Each position's weighted loss (weight · CE, 0 where ignored), after the forward ops ran. */
  async readTokenLosses(): Promise<Float32Array> {
    return readFloat32(this.device, this.lossRows, this.tokens * 4);
  }

  /**
   * Draws new LoRA dropout masks for the next run of the ops (call once per step when training); null turns
   * dropout off, for evaluation.
   */
  setDropoutSeed(seed: number | null): void {
    const state = seed === null ? Uint32Array.of(0, 0) : Uint32Array.of(seed >>> 0, 1);
    if (this.dropoutState) this.device.queue.writeBuffer(this.dropoutState, 0, state);
  }

  /**
   * The logits at token position `position` (batch-major) after the forward ops ran, when the whole vocabulary
   * fits one logits slice (small vocabularies): enough to sample from a tiny model without a decoding engine.
   */
  async readLogits(position: number): Promise<Float32Array> {
    if (this.slices.length !== 1) throw new Error('readLogits needs the vocabulary in one logits slice');
    const vocab = this.slices[0].rows;
    const all = await readFloat32(this.device, this.s.logits, this.tokens * vocab * 4);
    return all.slice(position * vocab, (position + 1) * vocab);
  }

  /** The batch's mean loss, after the forward ops ran (summed in float64 on the CPU). */
  async readLoss(): Promise<number> {
    const rows = await readFloat32(this.device, this.lossRows, this.tokens * 4);
    let sum = 0;
    for (const v of rows) sum += v;
    return sum;
  }

  destroy(): void {
    this.k.untrack(this);
    for (const b of this.buffers) b.destroy();
    releaseOps([...this.forwardOps, ...this.backwardOps]);
  }

  // ---- allocation -------------------------------------------------------------------------------------------

  private alloc(bytes: number, label: string): GPUBuffer {
    const buffer = createStorageBuffer(this.device, bytes, label);
    this.buffers.push(buffer);
    return buffer;
  }

  private allocateActivations(): void {
    const c = this.w.config;
    const T = this.shape.seq;
    const N = this.tokens;
    const { d, f, H, KV, hd } = shortDims(c);
    const r = this.lora?.settings.r ?? 0;
    const f32 = (n: number, label: string) => this.alloc(n * 4, label);
    // A layer's own set; with recompute (or forward only) every layer after the first reuses the first's, all but
    // the input where recompute keeps it.
    const own = (l: number): LayerActivations => ({
      xIn: f32(N * d, `L${l} xIn`),
      xn1: f32(N * d, `L${l} xn1`),
      rstd1: f32(N, `L${l} rstd1`),
      qPre: c.qkNorm ? f32(N * H * hd, `L${l} qPre`) : null,
      kPre: c.qkNorm ? f32(N * KV * hd, `L${l} kPre`) : null,
      rstdQ: c.qkNorm ? f32(N * H, `L${l} rstdQ`) : null,
      rstdK: c.qkNorm ? f32(N * KV, `L${l} rstdK`) : null,
      qr: f32(N * H * hd, `L${l} q rotated`),
      kr: f32(N * KV * hd, `L${l} k rotated`),
      v: f32(N * KV * hd, `L${l} v`),
      attn: f32(N * H * hd, `L${l} attn`),
      lse: f32(N * H, `L${l} attention log-sum-exp`),
      xMid: f32(N * d, `L${l} xMid`),
      xn2: f32(N * d, `L${l} xn2`),
      rstd2: f32(N, `L${l} rstd2`),
      gate: f32(N * f, `L${l} gate`),
      up: f32(N * f, `L${l} up`),
      act: f32(N * f, `L${l} act`),
      loraXa: null,
    });
    // A layer's modules' x A^T, [modules, N, r]: the layer's own when every activation is kept, else one buffer
    // all layers share, sized for the layer with the most modules (LoRA may skip layers: PEFT's
    // layers_to_transform).
    const slots = Math.max(0, ...Array.from({ length: c.numLayers }, (_, l) => this.loraModules(l).length));
    const sharedXa = this.kept !== 'all' && slots > 0 ? f32(slots * N * r, 'xA') : null;
    for (let l = 0; l < c.numLayers; l++) {
      const first = this.layers[0];
      const a: LayerActivations =
        l === 0 || this.kept === 'all'
          ? own(l)
          : { ...first, xIn: this.kept === 'inputs' ? f32(N * d, `L${l} xIn`) : first.xIn };
      const modules = this.loraModules(l).length;
      a.loraXa = modules === 0 ? null : (sharedXa ?? f32(modules * N * r, `L${l} xA`));
      this.layers.push(a);
    }
    const maxSlice = Math.max(0, ...this.slices.map((s) => s.rows));
    Object.assign(this.s, {
      xOut: f32(N * d, 'x out'), // residual after the last layer
      xf: f32(N * d, 'x final norm'),
      rstdF: f32(N, 'rstd final'),
      q: f32(N * H * hd, 'q rows'),
      k: f32(N * KV * hd, 'k rows'),
      qn: f32(N * H * hd, 'q normed'),
      kn: f32(N * KV * hd, 'k normed'),
      logits: f32(Math.max(1, N * maxSlice), 'logits chunk'),
      ceStats: f32(N * 3, 'cross-entropy stats'),
      lse: f32(N, 'log-sum-exp'),
      // A head's gradient input in 'hidden' mode (a reward head records its backward even over a forward-only step).
      dxf: f32(N * d, 'd final norm out'),
    });
    const { cos, sin } = ropeTables(c, T);
    this.s.cos = this.upload(cos, 'rope cos');
    this.s.sin = this.upload(sin, 'rope sin');
    // Backward scratch, none for a forward-only step.
    if (this.kept === 'none') return;
    Object.assign(this.s, {
      dx: f32(N * d, 'd residual'),
      dxn: f32(N * d, 'd normed'),
      dq: f32(N * H * hd, 'd q rows'),
      dk: f32(N * KV * hd, 'd k rows'),
      dv: f32(N * KV * hd, 'd v rows'),
      dqn: f32(N * H * hd, 'd q normed'),
      dkn: f32(N * KV * hd, 'd k normed'),
      dattn: f32(N * H * hd, 'd attention output'),
      dqr: f32(N * H * hd, 'd q rotated'),
      dkr: f32(N * KV * hd, 'd k rotated'),
      delta: f32(N * H, 'attention d out · out'),
      dgate: f32(N * f, 'd gate'),
      dup: f32(N * f, 'd up'),
      dact: f32(N * f, 'd act'),
      // d(x A^T) of a layer's modules, by slot as the layer's x A^T: kept until the layer's weight gradients.
      dxa: f32(Math.max(1, slots * N * r), 'd xA'),
    });
  }

  private upload(data: Float32Array<ArrayBuffer>, label: string): GPUBuffer {
    const buffer = this.alloc(data.byteLength, label);
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  private loraModules(layer: number): LoraModule[] {
    return this.lora ? this.lora.modules.filter((m) => m.layer === layer) : [];
  }

  /** Where a module's x A^T (and d(x A^T)) starts in its layer's buffers: its position among the layer's modules. */
  private loraOffset(m: LoraModule): number {
    return this.loraModules(m.layer).indexOf(m) * this.tokens * (this.lora?.settings.r ?? 0);
  }

  private grad(key: string, index = 0): GPUBuffer {
    const list = this.weightGrads?.get(key);
    if (!list) throw new Error(`no gradient buffer for ${key}`);
    return list[index];
  }

  // ---- recording --------------------------------------------------------------------------------------------

  private recordZeroGrad(): void {
    if (this.lora) this.zeroGradOps.push({ kind: 'clear', buffer: this.lora.grads });
    if (this.weightGrads) {
      for (const list of this.weightGrads.values())
        for (const buffer of list) this.zeroGradOps.push({ kind: 'clear', buffer });
    }
  }

  private mm(transA: boolean, transB: boolean, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape): Op[] {
    return this.k.matmuls.productFor(transA, transB, shape).ops(a, b, c, shape);
  }

  /** A product whose B is a base weight matrix (packed fp16 when the weights are held at half precision). */
  private mmWeight(
    transA: boolean,
    transB: boolean,
    a: GPUBuffer,
    w: GPUBuffer,
    c: GPUBuffer,
    shape: MatmulShape,
    lowRank?: LowRank,
  ): Op[] {
    return this.k.matmuls.productFor(transA, transB, shape, this.w.halfMatrices).ops(a, w, c, shape, lowRank);
  }

  /**
   * x A^T of the adapted modules among `projections`, all reading x [N, in] (through each module's dropout), into
   * their slots of the layer's loraXa as one grouped dispatch (kernels/grouped-matmul: a product of 16 columns is a
   * few workgroups' work, which on a GPU costs more in dispatches than in arithmetic); returns the low-rank term
   * each module's base product then adds, s (x A^T) B^T.
   */
  private loraInputs(
    ops: Op[],
    layer: number,
    projections: readonly Projection[],
    x: GPUBuffer,
  ): Partial<Record<Projection, LowRank>> {
    const lora = this.lora;
    const xa = this.layers[layer].loraXa;
    const modules = projections.flatMap((p) => lora?.module(layer, p) ?? []);
    if (!lora || !xa || modules.length === 0) return {};
    const slot = (m: LoraModule) => this.loraOffset(m);
    const { products, lowRanks } = lora.inputProducts(modules, x, xa, this.tokens, slot, (m) => this.dropoutOf(m, 'a'));
    ops.push(...this.k.grouped.ops(products, xa));
    return lowRanks;
  }

  /**
   * The x A^T of the adapted modules among `projections` (q/k/v, or gate/up), all reading the output of the
   * RMSNorm forward before them, for that norm to write as it produces each row (`lowRankIn`); and the low-rank
   * term each module's base product then adds. Null where the norms do not write LoRA's products
   * (normsWriteLora) or the device cannot bind all the norm's buffers (a norm carrying the residual, adding partial
   * sums and reading a dropout mask binds nine): then loraInputs after it.
   */
  private normLoraInputs(
    layer: number,
    projections: readonly Projection[],
    x: GPUBuffer,
  ): { lowRankIn?: LowRankIn; lowRanks: Partial<Record<Projection, LowRank>> } | null {
    const lora = this.lora;
    const xa = this.layers[layer].loraXa;
    const modules = projections.flatMap((p) => lora?.module(layer, p) ?? []);
    if (!lora || !xa || modules.length === 0) return { lowRanks: {} };
    if (!this.normsWriteLora || this.device.limits.maxStorageBuffersPerShaderStage < 9) return null;
    const { lowRanks } = lora.inputProducts(modules, x, xa, this.tokens, (m) => this.loraOffset(m));
    const lowRankIn: LowRankIn = {
      a: lora.params,
      rank: lora.settings.r,
      xa,
      modules: modules.map((m) => ({ offsetA: m.offsetA, offsetOut: this.loraOffset(m), moduleId: m.index })),
      mask: this.dropoutState ? { state: this.dropoutState, p: lora.settings.loraDropout } : undefined,
    };
    return { lowRankIn, lowRanks };
  }

  /**
   * y [N, out] = x [N, in] · W^T (+ bias) + the adapter's low-rank term from loraInputs, for each projection reading
   * x with its output y, as one set of products (kernels/matmul-set.ts).
   */
  private linear(
    ops: Op[],
    layer: number,
    outputs: ReadonlyArray<[Projection, GPUBuffer]>,
    x: GPUBuffer,
    lowRanks: Partial<Record<Projection, LowRank>>,
  ): void {
    const lw = this.w.layers[layer];
    const products = outputs.map(([projection, y]) => {
      const [out, inDim] = projectionShape(this.w.config, projection);
      return {
        a: x,
        b: lw.proj[projection],
        c: y,
        shape: { M: this.tokens, N: out, K: inDim },
        lowRank: lowRanks[projection],
      };
    });
    const shapes = products.map((product) => product.shape);
    ops.push(...this.k.matmuls.setFor('each', true, shapes, this.w.halfMatrices).ops(products));
    for (const [projection, y] of outputs) this.addBias(ops, layer, projection, y);
  }

  /**
   * y [N, out] += x [N, in] · W^T (+ bias) + the adapter's low-rank term from loraInputs: a block's last product
   * onto the residual stream. It may leave its output as partial sums (split-K's slices, its reduce pass spared),
   * returned for the next RMSNorm forward to add to y as it reads it; no slabs where it added onto y itself.
   */
  private linearAdd(
    ops: Op[],
    layer: number,
    projection: Projection,
    x: GPUBuffer,
    y: GPUBuffer,
    lowRank: LowRank | undefined,
  ): Slabs {
    const [out, inDim] = projectionShape(this.w.config, projection);
    const shape = { M: this.tokens, N: out, K: inDim };
    const set = this.k.matmuls.setFor('sum', true, [shape], this.w.halfMatrices);
    const product = { a: x, b: this.w.layers[layer].proj[projection], shape, lowRank };
    const { ops: productOps, ...partial } = set.partialSums([product], y, { M: this.tokens, N: out, beta: 1 });
    ops.push(...productOps);
    this.addBias(ops, layer, projection, y);
    return partial;
  }

  private addBias(ops: Op[], layer: number, projection: Projection, y: GPUBuffer): void {
    const bias = this.w.layers[layer].bias[projection];
    if (bias) ops.push(this.k.bias.addOp(bias, y, this.tokens, projectionShape(this.w.config, projection)[0]));
  }

  /**
   * d(x A^T) = s dy B [N, r] of the adapted modules among `grads` (each projection with its output's gradient dy),
   * into their slots of s.dxa as one grouped dispatch, for linearBackward's low-rank terms. Where the norms write
   * LoRA's products, o_proj's and down_proj's are not among them: the RMSNorm backward writing their dy wrote them
   * (residualLoraOut).
   */
  private loraInputGrads(ops: Op[], layer: number, grads: ReadonlyArray<[Projection, GPUBuffer]>): void {
    const lora = this.lora;
    if (!lora || !this.layers[layer].loraXa) return;
    const products = grads.flatMap(([projection, dy]) => {
      const m = lora.module(layer, projection);
      if (!m || (this.normsWriteLora && RESIDUAL_WRITERS.includes(projection))) return [];
      const shape = {
        M: this.tokens,
        N: lora.settings.r,
        K: m.outDim,
        offsetB: m.offsetB,
        offsetC: this.loraOffset(m),
      };
      return [{ a: dy, b: lora.params, transA: false, transB: false, shape: { ...shape, alpha: lora.scale } }];
    });
    if (products.length > 0) ops.push(...this.k.grouped.ops(products, this.s.dxa));
  }

  /**
   * Whether the RMSNorm kernels write LoRA's small products next to the rows they write (x Aᵀ after the norms in
   * the forward, d(x Aᵀ) of o_proj and down_proj in the backward), sparing the grouped dispatches that would: on
   * GPUs, whose dispatches cost more than these products. CPU adapters keep the grouped matmul, whose register
   * blocks ran them faster there (SwiftShader's step was 5% slower with the norms writing them).
   */
  private get normsWriteLora(): boolean {
    return this.k.choices.rows === 'cooperative';
  }

  /**
   * What the RMSNorm backward writing the residual stream's gradient also writes: the d(x A^T) = s dy B of the
   * module that added to the residual stream last, `projection` of `layer` (o_proj, down_proj), whose dy that
   * gradient is, into the module's slot of s.dxa; none where the module is not adapted.
   */
  private residualLoraOut(layer: number, projection: Projection): LowRankOut | undefined {
    const lora = this.lora;
    const m = lora?.module(layer, projection);
    if (!this.normsWriteLora || !lora || !m || !this.layers[layer].loraXa) return undefined;
    const { params, scale } = lora;
    return {
      b: params,
      offsetB: m.offsetB,
      rank: lora.settings.r,
      scale,
      out: this.s.dxa,
      offsetOut: this.loraOffset(m),
    };
  }

  /**
   * dx [N, in] = Σ dy · W (+ each LoRA path, from the d(x A^T) loraInputGrads writes first) over the projections
   * reading x, each with its output's gradient dy, as one sum of products (kernels/matmul-set.ts). Where dx's reader
   * adds partial sums as it reads (`partialReader`: an RMSNorm or SwiGLU backward), the sum may be left as split-K's
   * slices, its reduce pass spared: returned as where dx is, `sum`, and in how many slabs. Accumulates full mode's W
   * and bias gradients, and records the adapter's for flushLoraGrads.
   */
  private linearBackward(
    ops: Op[],
    layer: number,
    grads: ReadonlyArray<[Projection, GPUBuffer]>,
    x: GPUBuffer,
    dx: GPUBuffer,
    partialReader: boolean,
  ): Slabs {
    const N = this.tokens;
    const lw = this.w.layers[layer];
    this.loraInputGrads(ops, layer, grads);
    const products = grads.map(([projection, dy]) => {
      const [out, inDim] = projectionShape(this.w.config, projection);
      const shape = { M: N, N: inDim, K: out };
      return { a: dy, b: lw.proj[projection], shape, lowRank: this.adapterBackward(layer, projection, x, dy) };
    });
    const shapes = products.map((product) => product.shape);
    const set = this.k.matmuls.setFor('sum', false, shapes, this.w.halfMatrices);
    const shape = { M: N, N: shapes[0].N };
    let result: Slabs = { sum: dx, slabs: 1 };
    // Full mode's weight gradients below may run split-K, whose scratch the partial sums are: reduce them now.
    if (this.weightGrads || !partialReader) {
      ops.push(...set.sumOps(products, dx, shape));
    } else {
      const { ops: sumOps, ...partial } = set.partialSums(products, dx, shape);
      ops.push(...sumOps);
      result = partial;
    }
    if (!this.weightGrads) return result;
    for (const [projection, dy] of grads) {
      const [out, inDim] = projectionShape(this.w.config, projection);
      const key = projectionKey(layer, projection);
      ops.push(...this.mm(true, false, dy, x, this.grad(key), { M: out, N: inDim, K: N, beta: 1 }));
      if (lw.bias[projection]) ops.push(this.k.bias.gradOp(dy, this.grad(key.replace(/weight$/, 'bias')), N, out));
    }
    return result;
  }

  /**
   * The adapter's part of a projection's backward: records its weight gradients for flushLoraGrads and returns its
   * share of dx, dropout'(d(x A^T) A), as a low-rank term of the base product, carrying the module's dropout mask
   * when the adapter has dropout (the forward's mask, drawn again from the step's seed). None without a module.
   */
  private adapterBackward(layer: number, projection: Projection, x: GPUBuffer, dy: GPUBuffer): LowRank | undefined {
    const N = this.tokens;
    const [out, inDim] = projectionShape(this.w.config, projection);
    const m = this.lora?.module(layer, projection);
    const xa = this.layers[layer].loraXa;
    let lowRank: LowRank | undefined;
    if (m && xa && this.lora) {
      const { params, scale } = this.lora;
      const r = this.lora.settings.r;
      const dxa = this.s.dxa;
      const offset = this.loraOffset(m);
      this.loraGrads.push(
        // dB += s dy^T (x A^T)       [out, r]
        {
          a: dy,
          b: xa,
          transA: true,
          transB: false,
          shape: { M: out, N: r, K: N, offsetB: offset, offsetC: m.offsetB, alpha: scale, beta: 1 },
        },
        // dA += d(x A^T)^T dropout(x)        [r, in], the mask drawn again from the step's seed
        {
          a: dxa,
          b: x,
          transA: true,
          transB: false,
          shape: { M: r, N: inDim, K: N, offsetA: offset, offsetC: m.offsetA, beta: 1 },
          mask: this.dropoutOf(m, 'b'),
        },
      );
      lowRank = { l: dxa, r: params, rank: r, offsetL: offset, offsetR: m.offsetA, scale: 1 };
      if (this.dropoutState) {
        lowRank.mask = { state: this.dropoutState, module: m.index, p: this.lora.settings.loraDropout };
      }
    }
    return lowRank;
  }

  /**
   * The adapter's weight gradients recorded since the last flush, as few grouped dispatches (kernels/grouped-matmul):
   * each module's two products are a few workgroups' work, which on GPUs cost more in dispatches than in arithmetic.
   * Flushed before the residual gradient s.dx changes, since o_proj's and down_proj's dy is s.dx, and each
   * module's x A^T and d(x A^T) keep their own slots until then.
   */
  private flushLoraGrads(ops: Op[]): void {
    if (this.loraGrads.length === 0 || !this.lora) return;
    ops.push(...this.k.grouped.ops(this.loraGrads, this.lora.grads));
    this.loraGrads = [];
  }

  /**
   * The module's dropout on the adapter path's input, read as `operand` of its product (no dropout: none). The
   * input x is dense from offset 0, so the mask's index is x's element index, the same in the forward and backward.
   */
  private dropoutOf(m: LoraModule, operand: 'a' | 'b'): OperandMask | undefined {
    if (!this.dropoutState || !this.lora) return undefined;
    return { operand, state: this.dropoutState, module: m.index, p: this.lora.settings.loraDropout };
  }

  private recordForward(): void {
    const ops = this.forwardOps;
    const c = this.w.config;
    const N = this.tokens;
    const { d, eps } = shortDims(c);
    const s = this.s;
    for (const chunk of this.w.embed) {
      const { first, rows } = chunk;
      const half = this.w.halfMatrices;
      ops.push(this.k.embedding.forwardOp(this.ids, chunk.buffer, this.layers[0].xIn, N, d, first, rows, half));
    }
    // Each layer's last product may leave its output in partial sums for the next norm to add.
    let residual: Slabs | undefined;
    for (let l = 0; l < c.numLayers; l++) {
      residual = this.layerForward(ops, l, { residual });
      if (this.cacheTo) ops.push(...this.cacheCopies(l, this.cacheTo));
    }
    ops.push(this.k.rmsnorm.forwardOp(s.xOut, this.w.finalNorm, s.xf, s.rstdF, N, d, eps, undefined, residual));
    if (this.output === 'hidden') return;
    // Loss, one vocabulary slice at a time: logits = xf · E_slice^T, merged online into per-token statistics.
    for (const slice of this.slices) {
      ops.push(...this.logitsOps(slice));
      ops.push(this.k.crossEntropy.statsOp(s.logits, this.targets, s.ceStats, N, slice.first, slice.rows));
    }
    ops.push(this.k.crossEntropy.finishOp(s.ceStats, this.weightsPerToken, s.lse, this.lossRows, N));
  }

  /**
   * Layer l's forward: its activations from its input xIn (plus `residual`, the layer before's last product, in
   * partial sums for the input norm to add), and the next layer's input, the residual leaving it, as next xIn plus
   * the returned partial sums. Recorded in the forward, and as a `replay` in the backward when activations are
   * recomputed: xIn is then whole, and the next layer's input is neither needed nor touched.
   */
  private layerForward(ops: Op[], l: number, from: { residual?: Slabs; replay?: boolean }): Slabs | undefined {
    const c = this.w.config;
    const N = this.tokens;
    const { d, f, H, KV, hd, eps } = shortDims(c);
    const s = this.s;
    const a = this.layers[l];
    const lw = this.w.layers[l];
    const next = l + 1 < c.numLayers ? this.layers[l + 1].xIn : s.xOut;
    // Attention block; the norm carries the residual stream into xMid, which o_proj then adds onto.
    const qkvNames: Projection[] = ['q_proj', 'k_proj', 'v_proj'];
    const qkvLora = this.normLoraInputs(l, qkvNames, a.xn1);
    const { residual } = from;
    const inputNorm = [a.xIn, lw.inputNorm, a.xn1, a.rstd1] as const;
    ops.push(this.k.rmsnorm.forwardOp(...inputNorm, N, d, eps, a.xMid, residual, qkvLora?.lowRankIn));
    const qkv: Array<[Projection, GPUBuffer]> = [
      ['q_proj', a.qPre ?? s.q],
      ['k_proj', a.kPre ?? s.k],
      ['v_proj', a.v],
    ];
    this.linear(ops, l, qkv, a.xn1, qkvLora?.lowRanks ?? this.loraInputs(ops, l, qkvNames, a.xn1));
    if (a.qPre && a.kPre && a.rstdQ && a.rstdK && lw.qNorm && lw.kNorm) {
      ops.push(this.k.rmsnorm.forwardOp(a.qPre, lw.qNorm, s.qn, a.rstdQ, N * H, hd, eps));
      ops.push(this.k.rmsnorm.forwardOp(a.kPre, lw.kNorm, s.kn, a.rstdK, N * KV, hd, eps));
      ops.push(this.rope('forward', { x: s.qn, y: a.qr }, { x: s.kn, y: a.kr }));
    } else {
      ops.push(this.rope('forward', { x: s.q, y: a.qr }, { x: s.k, y: a.kr }));
    }
    ops.push(this.k.attention.forwardOp(a.qr, a.kr, a.v, a.attn, a.lse, this.attentionShape()));
    const attended = this.linearAdd(
      ops,
      l,
      'o_proj',
      a.attn,
      a.xMid,
      this.loraInputs(ops, l, ['o_proj'], a.attn).o_proj,
    );
    // MLP block, the residual carried on into the next layer's input for down_proj to add onto.
    const carry = from.replay ? undefined : next;
    const gateUpNames: Projection[] = ['gate_proj', 'up_proj'];
    const gateUpLora = this.normLoraInputs(l, gateUpNames, a.xn2);
    const postNorm = [a.xMid, lw.postNorm, a.xn2, a.rstd2] as const;
    ops.push(this.k.rmsnorm.forwardOp(...postNorm, N, d, eps, carry, attended, gateUpLora?.lowRankIn));
    const gateUp = gateUpLora?.lowRanks ?? this.loraInputs(ops, l, gateUpNames, a.xn2);
    this.linear(
      ops,
      l,
      [
        ['gate_proj', a.gate],
        ['up_proj', a.up],
      ],
      a.xn2,
      gateUp,
    );
    ops.push(this.k.swiglu.forwardOp(a.gate, a.up, a.act, N * f));
    // The backward needs down_proj's x A^T (its B's gradient), not its output.
    const down = this.loraInputs(ops, l, ['down_proj'], a.act).down_proj;
    return from.replay ? undefined : this.linearAdd(ops, l, 'down_proj', a.act, next, down);
  }

  /** Copies of layer l's rotated keys and values, [batch, seq, KV * hd], into each row's first seq cache rows. */
  private cacheCopies(l: number, caches: KeyValueCaches): Op[] {
    const { batch, seq } = this.shape;
    const { kr, v } = this.layers[l];
    const width = this.w.config.numKvHeads * this.w.config.headDim * 4;
    const cache = caches.layers[l];
    return Array.from({ length: batch }, (_, b) =>
      [
        [kr, cache.k],
        [v, cache.v],
      ].map(
        ([source, target]): Op => ({
          kind: 'copy',
          source,
          target,
          byteLength: seq * width,
          sourceOffset: b * seq * width,
          targetOffset: b * caches.maxLength * width,
        }),
      ),
    ).flat();
  }

  /** Rotary embeddings of the queries and keys, rows layout in and out. */
  private rope(rotation: Rotation, q: { x: GPUBuffer; y: GPUBuffer }, k: { x: GPUBuffer; y: GPUBuffer }): Op {
    const c = this.w.config;
    const { batch, seq } = this.shape;
    const shape = { batch, seq, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
    return this.k.rope.op(rotation, q, k, this.s.cos, this.s.sin, shape);
  }

  private attentionShape(): AttentionShape {
    const c = this.w.config;
    const { batch, seq } = this.shape;
    return { batch, seq, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
  }

  private logitsOps(slice: LogitsSlice): Op[] {
    const d = this.w.config.hiddenSize;
    return this.mmWeight(false, true, this.s.xf, slice.chunk.buffer, this.s.logits, {
      M: this.tokens,
      N: slice.rows,
      K: d,
      offsetB: (slice.first - slice.chunk.first) * d,
    });
  }

  private recordBackward(): void {
    const ops = this.backwardOps;
    const c = this.w.config;
    const N = this.tokens;
    const { d, f, H, KV, hd } = shortDims(c);
    const s = this.s;
    const full = this.weightGrads !== null;
    const lmKey = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';

    // Loss → final norm output: per slice, recompute logits, turn them into d(loss)/d(logits) in place, then
    // dxf (= for the first slice, then +=) dlogits · E_slice and (full) dE_slice += dlogits^T · xf. (A head has
    // written dxf in 'hidden' mode, which has no slices.)
    // When the whole vocabulary is one slice, the forward's logits are still there: no need to compute them again.
    const logitsKept = this.slices.length === 1;
    for (const [i, slice] of this.slices.entries()) {
      const off = (slice.first - slice.chunk.first) * d;
      if (!logitsKept) ops.push(...this.logitsOps(slice));
      ops.push(
        this.k.crossEntropy.backwardOp(this.targets, this.weightsPerToken, s.lse, s.logits, N, slice.first, slice.rows),
      );
      ops.push(
        ...this.mmWeight(false, false, s.logits, slice.chunk.buffer, s.dxf, {
          M: N,
          N: d,
          K: slice.rows,
          offsetB: off,
          beta: i === 0 ? 0 : 1,
        }),
      );
      if (full) {
        ops.push(
          ...this.mm(true, false, s.logits, s.xf, this.grad(lmKey, slice.chunkIndex), {
            M: slice.rows,
            N: d,
            K: N,
            offsetC: off,
            beta: 1,
          }),
        );
      }
    }
    const last = c.numLayers - 1;
    const lastDown = this.residualLoraOut(last, 'down_proj');
    ops.push(this.k.rmsnorm.backwardOp(s.xOut, this.w.finalNorm, s.rstdF, s.dxf, s.dx, N, d, false, 1, lastDown));
    if (full) ops.push(this.k.rmsnorm.weightGradOp(s.xOut, s.rstdF, s.dxf, this.grad('model.norm.weight'), N, d));

    for (let l = c.numLayers - 1; l >= 0; l--) {
      const a = this.layers[l];
      const lw = this.w.layers[l];
      const p = `model.layers.${l}`;
      // The layer's activations, recomputed from its kept input.
      if (this.kept === 'inputs') this.layerForward(ops, l, { replay: true });
      // s.dx holds d(loss)/d(residual leaving this layer).
      // MLP block: x_next = xMid + down(silu(gate(xn2)) * up(xn2)).
      const dact = this.linearBackward(ops, l, [['down_proj', s.dx]], a.act, s.dact, true);
      ops.push(this.k.swiglu.backwardOp(a.gate, a.up, dact.sum, s.dgate, s.dup, N * f, dact.slabs));
      const dxn2 = this.linearBackward(
        ops,
        l,
        [
          ['gate_proj', s.dgate],
          ['up_proj', s.dup],
        ],
        a.xn2,
        s.dxn,
        true,
      );
      this.flushLoraGrads(ops);
      const o = this.residualLoraOut(l, 'o_proj');
      ops.push(this.k.rmsnorm.backwardOp(a.xMid, lw.postNorm, a.rstd2, dxn2.sum, s.dx, N, d, true, dxn2.slabs, o));
      if (full)
        ops.push(
          this.k.rmsnorm.weightGradOp(a.xMid, a.rstd2, s.dxn, this.grad(`${p}.post_attention_layernorm.weight`), N, d),
        );

      // Attention block: xMid = xIn + o_proj(attention(xn1)).
      this.linearBackward(ops, l, [['o_proj', s.dx]], a.attn, s.dattn, false);
      ops.push(
        ...this.k.attention.backwardOps(
          { q: a.qr, k: a.kr, v: a.v, out: a.attn, dout: s.dattn, lse: a.lse },
          { delta: s.delta, dq: s.dqr, dk: s.dkr, dv: s.dv },
          this.attentionShape(),
        ),
      );
      ops.push(this.rope('inverse', { x: s.dqr, y: a.qPre ? s.dqn : s.dq }, { x: s.dkr, y: a.kPre ? s.dkn : s.dk }));
      if (a.qPre && a.kPre && a.rstdQ && a.rstdK && lw.qNorm && lw.kNorm) {
        ops.push(this.k.rmsnorm.backwardOp(a.qPre, lw.qNorm, a.rstdQ, s.dqn, s.dq, N * H, hd, false));
        ops.push(this.k.rmsnorm.backwardOp(a.kPre, lw.kNorm, a.rstdK, s.dkn, s.dk, N * KV, hd, false));
        if (full) {
          ops.push(
            this.k.rmsnorm.weightGradOp(a.qPre, a.rstdQ, s.dqn, this.grad(`${p}.self_attn.q_norm.weight`), N * H, hd),
          );
          ops.push(
            this.k.rmsnorm.weightGradOp(a.kPre, a.rstdK, s.dkn, this.grad(`${p}.self_attn.k_norm.weight`), N * KV, hd),
          );
        }
      }
      const dxn1 = this.linearBackward(
        ops,
        l,
        [
          ['q_proj', s.dq],
          ['k_proj', s.dk],
          ['v_proj', s.dv],
        ],
        a.xn1,
        s.dxn,
        true,
      );
      this.flushLoraGrads(ops);
      const down = l > 0 ? this.residualLoraOut(l - 1, 'down_proj') : undefined;
      ops.push(this.k.rmsnorm.backwardOp(a.xIn, lw.inputNorm, a.rstd1, dxn1.sum, s.dx, N, d, true, dxn1.slabs, down));
      if (full)
        ops.push(this.k.rmsnorm.weightGradOp(a.xIn, a.rstd1, s.dxn, this.grad(`${p}.input_layernorm.weight`), N, d));
    }
    if (full && this.tokenIndex) {
      for (const [i, chunk] of this.w.embed.entries()) {
        const dTable = this.grad('model.embed_tokens.weight', i);
        ops.push(this.k.embedding.backwardOp(this.tokenIndex, s.dx, dTable, N, d, chunk.first, chunk.rows));
      }
    }
  }
}

/** Splits the LM head's chunks into slices of at most `maxRows` vocabulary rows. */
function sliceVocabulary(chunks: VocabChunk[], maxRows: number): LogitsSlice[] {
  const slices: LogitsSlice[] = [];
  chunks.forEach((chunk, chunkIndex) => {
    for (let first = chunk.first; first < chunk.first + chunk.rows; first += maxRows) {
      slices.push({ chunkIndex, chunk, first, rows: Math.min(maxRows, chunk.first + chunk.rows - first) });
    }
  });
  return slices;
}

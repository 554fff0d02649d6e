import { layerAttention, type Projection, projectionShape, shortDims } from '../../../core/model-config';
import { createStorageBuffer, readFloat32, readUint32 } from '../gpu/buffers';
import { type Op, releaseOps, submitOps } from '../gpu/ops';
import type { DecodeShape } from '../kernels/decode-attention';
import { GemvKernels, type GemvNorm } from '../kernels/gemv';
import { DRAWS_HEADER, type DrawSettings, drawsFor } from '../kernels/sample';
import type { GatedActivation } from '../kernels/swiglu';
import type { EngineKernels } from './kernels';
import { gemvFormat, Linear, type LowRanks } from './linear';
import type { GpuLora } from './lora';
import { ropeTables } from './rope-tables';
import { TransformerStep } from './transformer';
import type { GpuWeights } from './weights';

/**
 * Most tokens (over all rows) a prefill runs in one pass: its activations, several [tokens, intermediate] buffers,
 * stay a fraction of the model's own memory (Llama 3.2 1B: about 170 KB a token); a longer prompt's rest goes a
 * decoding step per token.
 */
const PREFILL_TOKENS = 1024;

/**
 * Generation with a key-value cache, a token per row per step (B rows, each with its own cache, all at one position):
 *   x [B, d] = E[ids];  per layer as the training step (layer.ts), k and v appended to the caches;  logits [B, V]
 * Recorded once and replayed per step; before each the CPU writes the ids, the position and its rotary cos/sin.
 * One row's projections are gemvs that apply the RMSNorm before them as they read x; several rows' are matmuls
 * (linear.ts). Without an adapter the same weights give the base model, so base and tuned decoders share them.
 * Shapes: B rows, d hidden, f intermediate, H / KV query / key-value heads, hd head dim, V vocabulary, L max length.
 */
export class Decoder {
  readonly maxLength: number;
  /** One token's forward, recorded once (public for profiling). */
  readonly ops: Op[] = [];
  private readonly buffers: GPUBuffer[] = [];
  private readonly ids: GPUBuffer; // [B] u32
  private readonly position: GPUBuffer; // [1] u32
  private readonly rotary: GPUBuffer; // [hd]: the position's cos [hd / 2], then its sin
  /** Gemma's local layers' rotary angles [hd] (their own base) and tables; null for the others. */
  private readonly local: { rotary: GPUBuffer; tables: ReturnType<typeof ropeTables> } | null;
  /** Each layer's q and k norm weights side by side [2, hd] (qwen3, Gemma), as decoding's attention binds them. */
  private readonly qkNorms: (GPUBuffer | null)[];
  private readonly logits: GPUBuffer; // [B, V]
  private readonly draws: GPUBuffer; // [DRAWS_HEADER + B]: the sampling settings, each row's uniform
  private readonly forced: GPUBuffer; // [B] i32: a row's next token where the CPU knows it (its prompt's), else -1
  /**
   * Draws a token per row from the logits on the GPU into the token ids, where the next step reads them; not part
   * of `ops`, which it follows when asked (drawStep).
   */
  private readonly sampleOp: Op;
  private readonly tables: { cos: Float32Array<ArrayBuffer>; sin: Float32Array<ArrayBuffer> };
  /** The forward's activations and each layer's caches, allocated once: recording the ops again reuses them. */
  private readonly s: ReturnType<Decoder['allocate']>;
  private readonly linear: Linear;
  private length = 0;
  /** Gate and up outputs, only where the MLP cannot run as one gated gemv (see gatedMlp). */
  private gateUp: [GPUBuffer, GPUBuffer] | null = null;

  constructor(
    private readonly device: GPUDevice,
    private readonly k: EngineKernels,
    private readonly w: GpuWeights,
    private readonly lora: GpuLora | null,
    maxLength: number,
    /** Sequences decoded together, each with its own cache. */
    readonly rows = 1,
    /** Most tokens, over all rows, a prefill runs in one pass (see PREFILL_TOKENS). */
    private readonly prefillLimit = PREFILL_TOKENS,
  ) {
    const c = w.config;
    if (!(maxLength >= 1 && maxLength <= c.maxPositionEmbeddings)) {
      throw new Error(
        `a generation of ${maxLength} tokens does not fit max_position_embeddings ${c.maxPositionEmbeddings}`,
      );
    }
    if (!(Number.isInteger(rows) && rows >= 1)) throw new Error(`a decoder needs a whole number of rows, not ${rows}`);
    this.maxLength = maxLength;
    this.tables = ropeTables(c, maxLength);
    const f32 = (n: number, label: string) => this.alloc(n * 4, label);
    this.ids = f32(rows, 'token ids');
    this.position = f32(1, 'position');
    this.rotary = f32(c.headDim, 'rope cos, sin');
    this.local = c.gemma && { rotary: f32(c.headDim, 'local rope cos, sin'), tables: ropeTables(c, maxLength, true) };
    this.qkNorms = this.sideBySide(w);
    this.logits = f32(rows * c.vocabSize, 'logits');
    this.draws = f32(DRAWS_HEADER + rows, 'sampling draws');
    this.forced = f32(rows, 'forced ids');
    const { logits, draws, forced, ids } = this;
    this.sampleOp = k.sample.op({ logits, draws, forced, ids, rows, V: c.vocabSize });
    this.s = this.allocate();
    this.linear = new Linear(k, w, rows, true);
    this.record();
    k.track(this);
  }

  /**
   * Records the ops again over the same buffers: after the kernels' matmul tuner chose variants for the products
   * this decoder asked for (the kernels do it for every decoder and step alive when they tune).
   */
  rerecord(): void {
    releaseOps(this.ops);
    this.ops.length = 0;
    this.record();
  }

  private alloc(bytes: number, label: string): GPUBuffer {
    const buffer = createStorageBuffer(this.device, Math.max(4, bytes), label);
    this.buffers.push(buffer);
    return buffer;
  }

  get vocabSize(): number {
    return this.w.config.vocabSize;
  }

  /** Tokens in the cache so far. */
  get cached(): number {
    return this.length;
  }

  /** Empties the cache for a new conversation (the buffers stay). */
  reset(): void {
    this.length = 0;
  }

  /** Runs one token through the model at the next position and returns the logits that follow it. */
  async step(tokenId: number): Promise<Float32Array> {
    return this.stepRows([tokenId]);
  }

  /** Runs a token per row at the next position and returns the logits that follow them, [B, V]. */
  async stepRows(tokenIds: readonly number[]): Promise<Float32Array> {
    this.advance(tokenIds);
    return readFloat32(this.device, this.logits, this.rows * this.w.config.vocabSize * 4);
  }

  /** Runs a token per row at the next position, leaving their logits on the GPU. */
  advance(tokenIds: readonly number[]): void {
    this.checkTokens(tokenIds);
    this.device.queue.writeBuffer(this.ids, 0, Uint32Array.from(tokenIds));
    this.nextPosition();
    submitOps(this.device, this.ops);
  }

  /** A token per row, each inside the vocabulary (the embedding lookup would read past its table otherwise). */
  private checkTokens(tokenIds: readonly number[]): void {
    const V = this.w.config.vocabSize;
    if (tokenIds.length !== this.rows) throw new Error(`${tokenIds.length} tokens for a decoder of ${this.rows} rows`);
    for (const id of tokenIds) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`token ${id} is outside the vocabulary (0..${V - 1})`);
      }
    }
  }

  /** Writes the next position and its rotary angles for the step about to be submitted, and counts it. */
  private nextPosition(): void {
    if (this.length >= this.maxLength) throw new Error(`the conversation reached its ${this.maxLength}-token limit`);
    const half = this.w.config.headDim / 2;
    const p = this.length;
    const q = this.device.queue;
    q.writeBuffer(this.position, 0, Uint32Array.of(p));
    q.writeBuffer(this.rotary, 0, this.tables.cos, p * half, half);
    q.writeBuffer(this.rotary, half * 4, this.tables.sin, p * half, half);
    if (this.local) {
      q.writeBuffer(this.local.rotary, 0, this.local.tables.cos, p * half, half);
      q.writeBuffer(this.local.rotary, half * 4, this.local.tables.sin, p * half, half);
    }
    this.length++;
  }

  /**
   * One step that draws on the GPU (kernels/sample.ts: temperature, top-k up to TOP_K_MAX, top-p within it), for
   * decoding with no CPU between steps: runs the token ids as they stand (`inputs` first where given: the tokens a
   * run of draws starts from), then draws each row's next token into them, or takes the row's `forced` token (≥ 0:
   * a prompt token still to feed). The ids come back through the promise while the next step may already run:
   * submit it before awaiting this one.
   */
  drawStep(
    sampling: DrawSettings,
    uniforms: readonly number[],
    forced: readonly number[],
    inputs?: readonly number[],
  ): Promise<Uint32Array> {
    if (uniforms.length !== this.rows || forced.length !== this.rows) {
      throw new Error(`draws for ${uniforms.length} and ${forced.length} rows in a decoder of ${this.rows}`);
    }
    if (inputs) this.checkTokens(inputs);
    // A forced token is fed next; -1 draws.
    this.checkTokens(forced.map((id) => (id === -1 ? 0 : id)));
    const q = this.device.queue;
    if (inputs) q.writeBuffer(this.ids, 0, Uint32Array.from(inputs));
    const topK = Math.min(sampling.topK, this.w.config.vocabSize);
    q.writeBuffer(this.draws, 0, drawsFor({ ...sampling, topK }, uniforms));
    q.writeBuffer(this.forced, 0, Int32Array.from(forced));
    this.nextPosition();
    submitOps(this.device, [...this.ops, this.sampleOp]);
    // The readback's copy is queued now, before any later step rewrites the ids.
    return readUint32(this.device, this.ids, this.rows * 4);
  }

  /** Resolves when the GPU has run every step submitted so far. */
  idle(): Promise<void> {
    return this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Runs the first tokens of a conversation, the same number per row, into the empty cache at once, leaving no
   * logits (the next step, for the prompt's last token, gives them): the training forward over every token
   * (model/transformer.ts), its keys and values copied into the caches, instead of a decoding step per token. On
   * a GPU a decoding step is bound by its few hundred dispatches whatever its tokens, so a prompt's wait shrinks by
   * about its length; on a CPU adapter the matmuls run several times the gemvs' rate. Past PREFILL_TOKENS, the
   * rest go a step per token.
   */
  prefill(tokens: ReadonlyArray<readonly number[]>): void {
    if (this.length !== 0) throw new Error('a prefill starts a conversation: reset the decoder first');
    if (tokens.length !== this.rows) throw new Error(`${tokens.length} rows of tokens for a decoder of ${this.rows}`);
    const n = tokens[0].length;
    if (tokens.some((row) => row.length !== n)) throw new Error('a prefill runs the same number of tokens per row');
    if (n > this.maxLength) throw new Error(`${n} tokens do not fit the conversation's ${this.maxLength}-token limit`);
    const limit = this.prefillTokens();
    const once = Math.min(n, limit);
    if (once > 1) {
      // Where the kernels tune products per shape (GPUs), the pass is padded to a power of two, so prompts of every
      // length ask the tuner for a few shapes rather than one each. The padding follows the prompt, so causal
      // attention keeps it out of the prompt's keys and values; the cache rows it fills are written again before
      // any step reads them.
      // Rings (Gemma's local layers) take no padding: its positions would wrap onto the prompt's own.
      const rings = this.s.caches.some((cache) => cache.length < this.maxLength);
      const padded = Math.min(2 ** Math.ceil(Math.log2(once)), this.maxLength, limit);
      const seq = this.k.choices.tune && !rings ? padded : once;
      const step = new TransformerStep(
        this.device,
        this.k,
        this.w,
        this.lora,
        { batch: this.rows, seq },
        {
          full: false,
          forwardOnly: true,
          output: 'hidden',
          cacheTo: { layers: this.s.caches, maxLength: this.maxLength },
        },
      );
      try {
        step.setBatch(tokens.map((row) => [...row.slice(0, once), ...Array(seq - once).fill(0)]));
        submitOps(this.device, step.forwardOps);
      } finally {
        // The buffers go once the GPU has run what was submitted.
        step.destroy();
      }
      this.length = once;
    }
    for (let t = this.length; t < n; t++) this.advance(tokens.map((row) => row[t]));
  }

  /**
   * Tokens per row a prefill runs at once: its limit over the rows, and few enough that its widest activation,
   * [tokens, intermediate or heads × head dim], fits one binding.
   */
  private prefillTokens(): number {
    const { f, H, hd, d } = shortDims(this.w.config);
    const widest = 4 * Math.max(f, H * hd, d);
    const rows = Math.floor(this.device.limits.maxStorageBufferBindingSize / widest);
    return Math.floor(Math.min(this.prefillLimit, rows) / this.rows);
  }

  /** Feeds one row's tokens in order (all but the last as a prefill) and returns the logits after the last. */
  async feed(tokenIds: readonly number[]): Promise<Float32Array> {
    if (tokenIds.length === 0) throw new Error('nothing to feed');
    if (this.length === 0) this.prefill([tokenIds.slice(0, -1)]);
    else for (const id of tokenIds.slice(0, -1)) this.advance([id]);
    return this.step(tokenIds[tokenIds.length - 1]);
  }

  destroy(): void {
    this.k.untrack(this);
    for (const b of this.buffers) b.destroy();
    releaseOps([...this.ops, this.sampleOp]);
  }

  // ---- recording --------------------------------------------------------------------------------------------

  /**
   * The input of the products after an RMSNorm: for one row whose products over the hidden size all run as gemvs,
   * x itself with the norm for them to apply as they read it (no dispatch, nothing written); otherwise the norm
   * recorded into xn.
   */
  private normed(x: GPUBuffer, weight: GPUBuffer): { input: GPUBuffer; norm?: GemvNorm } {
    const { d, eps } = shortDims(this.w.config);
    if (this.rows === 1 && (!this.w.halfMatrices || GemvKernels.halfFits({ N: 1, K: d }))) {
      return { input: x, norm: { weight, eps } };
    }
    const { xn, rstd } = this.s;
    this.ops.push(this.k.rmsnorm.forwardOp({ x, w: weight, y: xn, rstd, rows: this.rows, dim: d, eps }));
    return { input: xn };
  }

  /** xa [modules, B, r] = x · A_mᵀ of the adapted modules among `projections` (all reading x), and their low-rank terms. */
  private loraInputs(layer: number, projections: readonly Projection[], x: GPUBuffer, norm?: GemvNorm): LowRanks {
    const modules = projections.flatMap((p) => this.lora?.module(layer, p) ?? []);
    if (!this.lora || modules.length === 0) return {};
    const r = this.lora.settings.r;
    return this.linear.loraInputs(this.ops, this.lora, modules, x, this.s.xa, {
      slotOf: (_, i) => i * this.rows * r,
      norm,
    });
  }

  /** Each layer's q and k norm weights copied side by side, [2, hd]; null where the model has none. */
  private sideBySide(w: GpuWeights): (GPUBuffer | null)[] {
    const bytes = w.config.headDim * 4;
    const copies: Op[] = [];
    const buffers = w.layers.map((lw, l) => {
      if (!lw.qNorm || !lw.kNorm) return null;
      const both = this.alloc(2 * bytes, `layer ${l} q and k norms`);
      copies.push({
        kind: 'copy',
        source: lw.qNorm,
        target: both,
        byteLength: bytes,
        sourceOffset: 0,
        targetOffset: 0,
      });
      copies.push({
        kind: 'copy',
        source: lw.kNorm,
        target: both,
        byteLength: bytes,
        sourceOffset: 0,
        targetOffset: bytes,
      });
      return both;
    });
    if (copies.length > 0) submitOps(this.device, copies);
    return buffers;
  }

  /** The gated MLP's activation: SiLU, or Gemma's tanh GELU. */
  private get activation(): GatedActivation {
    return this.w.config.gemma ? 'gelu' : 'silu';
  }

  /**
   * x += y of a block's last product onto the residual stream: added as it is written, or (Gemma) written to
   * `blockOut` and its RMSNorm added.
   */
  private blockOutput(layer: number, projection: 'o_proj' | 'down_proj', input: GPUBuffer): void {
    const { x, blockOut, rstd } = this.s;
    const low = this.loraInputs(layer, [projection], input);
    const lw = this.w.layers[layer];
    const norm = projection === 'o_proj' ? lw.attnOutNorm : lw.mlpOutNorm;
    if (!norm || !blockOut) {
      this.linear.forward(this.ops, layer, [[projection, x]], input, low, { accumulate: true });
      return;
    }
    this.linear.forward(this.ops, layer, [[projection, blockOut]], input, low);
    const { d, eps } = shortDims(this.w.config);
    const rows = this.rows;
    this.ops.push(this.k.rmsnorm.forwardOp({ x: blockOut, w: norm, y: x, rstd, rows, dim: d, eps, accumulate: true }));
  }

  /**
   * act [B, f] = silu(gate(x)) * up(x), LoRA included: for one token one gated gemv (kernels/gemv.ts), after the
   * adapted modules' x A^T; x read through `norm` where given.
   */
  private gatedMlp(layer: number, x: GPUBuffer, act: GPUBuffer, norm?: GemvNorm): void {
    const [f, d] = projectionShape(this.w.config, 'gate_proj');
    const lw = this.w.layers[layer];
    const shape = { N: f, K: d };
    const low = this.loraInputs(layer, ['gate_proj', 'up_proj'], x, norm);
    if (this.linear.usesMatmul(shape)) {
      // Matmuls (several rows, or fp16 rows of odd length, which straddle words), then SwiGLU.
      const n = this.rows * f;
      this.gateUp ??= [this.alloc(n * 4, 'gate'), this.alloc(n * 4, 'up')];
      const [gate, up] = this.gateUp;
      const outputs: Array<[Projection, GPUBuffer]> = [
        ['gate_proj', gate],
        ['up_proj', up],
      ];
      this.linear.forward(this.ops, layer, outputs, x, low);
      this.ops.push(this.k.swiglu.forwardOp({ gate, up, act, n, activation: this.activation }));
      return;
    }
    const lowRank = { w: low.gate_proj, u: low.up_proj };
    const format = gemvFormat(this.w.projectionFormat);
    const io = { x, w: lw.proj.gate_proj, u: lw.proj.up_proj, y: act, shape, ...format, lowRank, norm };
    this.ops.push(this.k.gemv.gatedOp({ ...io, activation: this.activation }));
  }

  private allocate() {
    const c = this.w.config;
    const { d, f, H, KV, hd } = shortDims(c);
    const B = this.rows;
    const L = this.maxLength;
    const f32 = (n: number, label: string) => this.alloc(n * 4, label);
    return {
      x: f32(B * d, 'residual'),
      xn: f32(B * d, 'normed'),
      rstd: f32(B, 'rstd'),
      q: f32(B * H * hd, 'q'),
      kRaw: f32(B * KV * hd, 'k'),
      v: f32(B * KV * hd, 'v'),
      attn: f32(B * H * hd, 'attention output'),
      scores: f32(B * H * L, 'scores'),
      act: f32(B * f, 'act'),
      // x A^T of the adapted modules reading one input: up to three (q, k and v).
      xa: f32(B * 3 * Math.max(1, this.lora?.settings.r ?? 1), 'x A^T'),
      // Gemma's o_proj and down_proj outputs before their norms.
      blockOut: c.gemma ? f32(B * d, 'block output') : null,
      // Each layer's keys and values [B, length, KV * hd]: a local layer's only its window, as a ring.
      caches: Array.from({ length: c.numLayers }, (_, l) => {
        const length = this.cacheLength(l);
        return {
          k: f32(B * length * KV * hd, `layer ${l} key cache`),
          v: f32(B * length * KV * hd, `layer ${l} value cache`),
          length,
        };
      }),
    };
  }

  /** One layer's decoding attention: Gemma's score scale, and its window on local layers. */
  /** Positions layer l's cache holds: the conversation's, or a local layer's window where that is shorter. */
  private cacheLength(l: number): number {
    const { window } = layerAttention(this.w.config, l);
    return window === undefined ? this.maxLength : Math.min(window, this.maxLength);
  }

  /** Layer l's decoding attention: Gemma's score scale, and on local layers its window over a ring cache. */
  private attentionShape(l: number): DecodeShape {
    const c = this.w.config;
    const shape = {
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      maxLen: this.maxLength,
      rows: this.rows,
      cacheLength: this.cacheLength(l),
    };
    return { ...shape, ...layerAttention(c, l) };
  }

  private record(): void {
    const c = this.w.config;
    const { d, eps } = shortDims(c);
    const B = this.rows;
    const { x, q, kRaw, v, attn, scores, act } = this.s;
    const { ops, linear } = this;

    // x [B, d] = E[ids] (· Gemma's √d)
    const scale = c.gemma?.embedScale;
    for (const { buffer, first, rows } of this.w.embed) {
      const embed = { ids: this.ids, chunk: buffer, x, format: this.w.tableFormat };
      ops.push(this.k.embedding.forwardOp({ ...embed, tokens: B, dim: d, first, rows, scale }));
    }
    for (let l = 0; l < c.numLayers; l++) {
      const lw = this.w.layers[l];
      const { k: kCache, v: vCache } = this.s.caches[l];
      // q, k, v = rmsnorm(x) · Wᵀ (+ LoRA, + b)
      const { input, norm } = this.normed(x, lw.inputNorm);
      const qkv = this.loraInputs(l, ['q_proj', 'k_proj', 'v_proj'], input, norm);
      const outputs: Array<[Projection, GPUBuffer]> = [
        ['q_proj', q],
        ['k_proj', kRaw],
        ['v_proj', v],
      ];
      linear.forward(ops, l, outputs, input, qkv, { norm });
      // attn = attention over the cache after appending rope(k), v; per-head norms (qwen3, Gemma) applied as q, k
      // are read; Gemma's local layers within their window, with their own rotary angles.
      const normWeights = this.qkNorms[l];
      const norms = normWeights ? { weights: normWeights, eps } : undefined;
      const sliding = c.gemma?.slidingLayers[l] ?? false;
      const rotary = sliding && this.local ? this.local.rotary : this.rotary;
      const io = { position: this.position, q, k: kRaw, v, rotary, kCache, vCache, scores, out: attn };
      ops.push(this.k.decodeAttention.op(io, this.attentionShape(l), norms));
      // x += attn · W_oᵀ;  act = silu(gate(rmsnorm(x))) · up(rmsnorm(x));  x += act · W_downᵀ (Gemma: each added
      // through its norm)
      this.blockOutput(l, 'o_proj', attn);
      const mlp = this.normed(x, lw.postNorm);
      this.gatedMlp(l, mlp.input, act, mlp.norm);
      this.blockOutput(l, 'down_proj', act);
    }
    // logits [B, V] = rmsnorm(x) · Eᵀ
    const head = this.normed(x, this.w.finalNorm);
    for (const chunk of this.w.lmHead) {
      const shape = { N: chunk.rows, K: d, offsetC: chunk.first, ldc: c.vocabSize };
      linear.product(ops, head.input, chunk.buffer, this.logits, shape, {
        norm: head.norm,
        format: this.w.tableFormat,
      });
    }
  }
}

import { type Projection, projectionShape, shortDims } from '../../../core/model-config';
import { createStorageBuffer, readFloat32, readUint32 } from '../gpu/buffers';
import { type Op, releaseOps, submitOps } from '../gpu/ops';
import { GemvKernels, type GemvNorm, type GemvShape } from '../kernels/gemv';
import type { LowRank } from '../kernels/matmul';
import { DRAWS_HEADER, type DrawSettings, drawsFor } from '../kernels/sample';
import type { EngineKernels } from './kernels';
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
 * Generation, one token at a time, with a key-value cache on the GPU, for one sequence or `rows` of them decoded
 * together (policy optimization's completions: each weight read once per step for all of them). The forward of one
 * token per row is recorded once as ops and replayed for every step: before each, the CPU writes the token ids,
 * their position (shared: the rows advance together) and that position's rotary cos/sin; the ops append the
 * tokens' keys and values to each row's cache and attend over the cache so far. The prompt goes through the same
 * ops token by token, so there is one path to trust.
 *
 * One row's projections are matrix-vector products (kernels/gemv.ts), which also apply the RMSNorm before them as
 * they read the residual stream; several rows' are matmuls of that many rows, after the norm's own dispatch.
 * With a LoRA adapter the projections add its path (no dropout: this is inference); without one the same weights
 * give the base model, so "base" and "tuned" decoders share the model in GPU memory.
 *
 * Shapes: B rows, d hidden, f intermediate, H / KV query / key-value heads, hd head dim, V vocabulary, L max length.
 */
export class Decoder {
  readonly maxLength: number;
  /** One token's forward, recorded once (public for profiling). */
  readonly ops: Op[] = [];
  private readonly buffers: GPUBuffer[] = [];
  private readonly ids: GPUBuffer; // [B] u32
  private readonly position: GPUBuffer; // [1] u32
  private readonly cos: GPUBuffer; // [hd / 2]
  private readonly sin: GPUBuffer; // [hd / 2]
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
    this.cos = f32(c.headDim / 2, 'rope cos');
    this.sin = f32(c.headDim / 2, 'rope sin');
    this.logits = f32(rows * c.vocabSize, 'logits');
    this.draws = f32(DRAWS_HEADER + rows, 'sampling draws');
    this.forced = f32(rows, 'forced ids');
    this.sampleOp = k.sample.op(this.logits, this.draws, this.forced, this.ids, { rows, V: c.vocabSize });
    this.s = this.allocate();
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
    q.writeBuffer(this.cos, 0, this.tables.cos, p * half, half);
    q.writeBuffer(this.sin, 0, this.tables.sin, p * half, half);
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
      const seq = this.k.choices.tune ? Math.min(2 ** Math.ceil(Math.log2(once)), this.maxLength, limit) : once;
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
   * out [B, N] (= or +=) x [B, K] · W^T (+ a low-rank term), `ldc` apart, W a base weight matrix (fp16 where the
   * model is held so): for one token a matrix-vector product, bandwidth-bound (see kernels/gemv.ts); for several
   * rows, or fp16 rows the gemv cannot read, a matmul.
   */
  private mm(
    a: GPUBuffer,
    b: GPUBuffer,
    out: GPUBuffer,
    shape: GemvShape & { ldc?: number },
    lowRank?: LowRank,
    norm?: GemvNorm,
    bias?: GPUBuffer,
  ): Op[] {
    const half = this.w.halfMatrices;
    if (this.usesMatmul(shape)) {
      if (norm) throw new Error('only a gemv reads its input through a norm');
      const product = { M: this.rows, ...shape };
      const ops = this.k.matmuls.productFor(false, true, product, half).ops(a, b, out, product, lowRank);
      return bias ? [...ops, this.k.bias.addOp(bias, out, this.rows, shape.N)] : ops;
    }
    return [this.k.gemv.op(a, b, out, shape, { halfW: half, lowRank, norm, bias })];
  }

  /** Whether products of this shape are matmuls: several rows, or fp16 rows the gemv cannot read. */
  private usesMatmul(shape: GemvShape): boolean {
    return this.rows > 1 || (this.w.halfMatrices && !GemvKernels.halfFits(shape));
  }

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
    this.ops.push(this.k.rmsnorm.forwardOp(x, weight, xn, rstd, this.rows, d, eps));
    return { input: xn };
  }

  /**
   * x A^T of the adapted modules among `projections` (all reading x [B, in]) into `xa`, [modules, B, r] in that
   * order, and the low-rank term each module's base product then adds, s (x A^T) B^T: for one row a single gemv
   * over the modules' A as segments of W, for several rows one grouped matmul (kernels/grouped-matmul).
   */
  private loraInputs(
    layer: number,
    projections: readonly Projection[],
    x: GPUBuffer,
    xa: GPUBuffer,
    norm?: GemvNorm,
  ): Partial<Record<Projection, LowRank>> {
    const lora = this.lora;
    const modules = projections.flatMap((p) => lora?.module(layer, p) ?? []);
    if (!lora || modules.length === 0) return {};
    const r = lora.settings.r;
    const { products, lowRanks } = lora.inputProducts(modules, x, xa, this.rows, (_, i) => i * this.rows * r);
    if (this.rows === 1) {
      const segments = { rows: r, offsets: modules.slice(1).map((m) => m.offsetA) };
      const shape = { N: r * modules.length, K: modules[0].inDim, offsetB: modules[0].offsetA, segments };
      this.ops.push(this.k.gemv.op(x, lora.params, xa, shape, { norm }));
    } else {
      this.ops.push(...this.k.grouped.ops(products, xa));
    }
    return lowRanks;
  }

  /**
   * y [B, out] (= or +=) x [B, in] · W^T (+ bias) + the adapter's low-rank term (from loraInputs), for each
   * projection reading x with its output y, x read through `norm` where given; a gemv adds the bias as it stores,
   * a matmul with a dispatch after. Several run as one set of products (kernels/matmul-set.ts, or gemv.ts's setOp).
   */
  private linear(
    layer: number,
    outputs: ReadonlyArray<[Projection, GPUBuffer]>,
    x: GPUBuffer,
    accumulate: boolean,
    lowRanks: Partial<Record<Projection, LowRank>>,
    norm?: GemvNorm,
  ) {
    const lw = this.w.layers[layer];
    const products = outputs.map(([projection, y]) => {
      const [out, inDim] = projectionShape(this.w.config, projection);
      const shape = { M: this.rows, N: out, K: inDim, beta: accumulate ? 1 : 0 };
      return { a: x, b: lw.proj[projection], c: y, shape, lowRank: lowRanks[projection], bias: lw.bias[projection] };
    });
    // The products share x and K, so they are all matmuls or all gemvs.
    const several = products.length > 1;
    const matmuls = this.usesMatmul(products[0].shape);
    if (several && matmuls && !norm) {
      const set = this.k.matmuls.setFor(
        'each',
        true,
        products.map((product) => product.shape),
        this.w.halfMatrices,
      );
      this.ops.push(...set.ops(products));
      for (const { c, shape, bias } of products)
        if (bias) this.ops.push(this.k.bias.addOp(bias, c, this.rows, shape.N));
      return;
    }
    // One token's gemvs as one dispatch where the adapter takes sets (GPUs) and can bind them all.
    const set =
      several && !matmuls && this.k.choices.matmulSets && this.k.gemv.layout === 'cooperative'
        ? this.k.gemv.setOp(
            x,
            products.map(({ b, c, shape, lowRank, bias }) => ({ w: b, y: c, shape, lowRank, bias })),
            { halfW: this.w.halfMatrices, norm },
          )
        : null;
    if (set) {
      this.ops.push(set);
      return;
    }
    for (const { b, c, shape, lowRank, bias } of products)
      this.ops.push(...this.mm(x, b, c, shape, lowRank, norm, bias));
  }

  /**
   * act [B, f] = silu(gate(x)) * up(x), LoRA included: for one token one gated gemv (kernels/gemv.ts), after the
   * adapted modules' x A^T; x read through `norm` where given.
   */
  private gatedMlp(layer: number, x: GPUBuffer, act: GPUBuffer, xa: GPUBuffer, norm?: GemvNorm): void {
    const [f, d] = projectionShape(this.w.config, 'gate_proj');
    const lw = this.w.layers[layer];
    const half = this.w.halfMatrices;
    const shape = { N: f, K: d };
    const low = this.loraInputs(layer, ['gate_proj', 'up_proj'], x, xa, norm);
    if (this.usesMatmul(shape)) {
      // Matmuls (several rows, or fp16 rows of odd length, which straddle words), then SwiGLU.
      const n = this.rows * f;
      this.gateUp ??= [this.alloc(n * 4, 'gate'), this.alloc(n * 4, 'up')];
      const [gate, up] = this.gateUp;
      this.linear(
        layer,
        [
          ['gate_proj', gate],
          ['up_proj', up],
        ],
        x,
        false,
        low,
      );
      this.ops.push(this.k.swiglu.forwardOp(gate, up, act, n));
      return;
    }
    const lowRank = { w: low.gate_proj, u: low.up_proj };
    this.ops.push(
      this.k.gemv.gatedOp(x, lw.proj.gate_proj, lw.proj.up_proj, act, shape, { halfW: half, lowRank, norm }),
    );
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
      caches: Array.from({ length: c.numLayers }, (_, l) => ({
        k: f32(B * L * KV * hd, `layer ${l} key cache`),
        v: f32(B * L * KV * hd, `layer ${l} value cache`),
      })),
    };
  }

  private record(): void {
    const c = this.w.config;
    const { d, H, KV, hd, eps } = shortDims(c);
    const B = this.rows;
    const { x, q, kRaw, v, attn, scores, act, xa } = this.s;
    const shape = { heads: H, kvHeads: KV, headDim: hd, maxLen: this.maxLength, rows: B };
    const ops = this.ops;

    for (const chunk of this.w.embed) {
      ops.push(
        this.k.embedding.forwardOp(this.ids, chunk.buffer, x, B, d, chunk.first, chunk.rows, this.w.halfMatrices),
      );
    }
    for (let l = 0; l < c.numLayers; l++) {
      const lw = this.w.layers[l];
      const { k: kCache, v: vCache } = this.s.caches[l];
      const { input, norm } = this.normed(x, lw.inputNorm);
      const qkv = this.loraInputs(l, ['q_proj', 'k_proj', 'v_proj'], input, xa, norm);
      const outputs: Array<[Projection, GPUBuffer]> = [
        ['q_proj', q],
        ['k_proj', kRaw],
        ['v_proj', v],
      ];
      this.linear(l, outputs, input, false, qkv, norm);
      // Qwen3's per-head norms of q and k, applied by the attention as it reads them.
      const norms = lw.qNorm && lw.kNorm ? { q: lw.qNorm, k: lw.kNorm, eps } : undefined;
      ops.push(
        this.k.decodeAttention.op(
          this.position,
          { q, k: kRaw, v, cos: this.cos, sin: this.sin },
          { kCache, vCache },
          scores,
          attn,
          shape,
          norms,
        ),
      );
      this.linear(l, [['o_proj', x]], attn, true, this.loraInputs(l, ['o_proj'], attn, xa));
      const mlp = this.normed(x, lw.postNorm);
      this.gatedMlp(l, mlp.input, act, xa, mlp.norm);
      this.linear(l, [['down_proj', x]], act, true, this.loraInputs(l, ['down_proj'], act, xa));
    }
    const head = this.normed(x, this.w.finalNorm);
    for (const chunk of this.w.lmHead) {
      const shape = { N: chunk.rows, K: d, offsetC: chunk.first, ldc: c.vocabSize };
      ops.push(...this.mm(head.input, chunk.buffer, this.logits, shape, undefined, head.norm));
    }
  }
}

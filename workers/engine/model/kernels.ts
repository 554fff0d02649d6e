import { AdamWKernels } from '../kernels/adamw';
import { BiasKernels } from '../kernels/bias';
import { CrossEntropyKernels } from '../kernels/cross-entropy';
import { DecodeAttentionKernels } from '../kernels/decode-attention';
import { DropoutKernel } from '../kernels/dropout';
import { EmbeddingKernels } from '../kernels/embedding';
import { GemvKernels } from '../kernels/gemv';
import { RmsNormKernels } from '../kernels/rmsnorm';
import { RopeKernels } from '../kernels/rope';
import { ScoreHeadKernels } from '../kernels/score-head';
import { CausalSoftmaxKernels } from '../kernels/softmax';
import { SwiGluKernels } from '../kernels/swiglu';
import { CPU_MATMUL_TILE, type MatmulTile, MatmulTuner } from './matmul-tuner';

/** Every kernel the transformer uses, compiled once per device. */
export class EngineKernels {
  readonly rmsnorm: RmsNormKernels;
  readonly rope: RopeKernels;
  readonly softmax: CausalSoftmaxKernels;
  readonly swiglu: SwiGluKernels;
  readonly bias: BiasKernels;
  readonly embedding: EmbeddingKernels;
  readonly crossEntropy: CrossEntropyKernels;
  readonly adamw: AdamWKernels;
  readonly dropout: DropoutKernel;
  readonly decodeAttention: DecodeAttentionKernels;
  readonly gemv: GemvKernels;
  readonly scoreHead: ScoreHeadKernels;
  /** Picks each matmul's variant; `tune` it on hardware adapters before recording a plan for speed. */
  readonly matmuls: MatmulTuner;

  constructor(
    readonly device: GPUDevice,
    tile: MatmulTile = CPU_MATMUL_TILE,
  ) {
    this.matmuls = new MatmulTuner(device, tile);
    this.rmsnorm = new RmsNormKernels(device);
    this.rope = new RopeKernels(device);
    this.softmax = new CausalSoftmaxKernels(device);
    this.swiglu = new SwiGluKernels(device);
    this.bias = new BiasKernels(device);
    this.embedding = new EmbeddingKernels(device);
    this.crossEntropy = new CrossEntropyKernels(device);
    this.adamw = new AdamWKernels(device);
    this.dropout = new DropoutKernel(device);
    this.decodeAttention = new DecodeAttentionKernels(device);
    this.gemv = new GemvKernels(device);
    this.scoreHead = new ScoreHeadKernels(device);
  }
}

import { AdamWKernels } from '../kernels/adamw';
import { BiasKernels } from '../kernels/bias';
import { CrossEntropyKernels } from '../kernels/cross-entropy';
import { DropoutKernel } from '../kernels/dropout';
import { EmbeddingKernels } from '../kernels/embedding';
import { DEFAULT_MATMUL_TILE, MatmulKernel, type MatmulVariant } from '../kernels/matmul';
import { RmsNormKernels } from '../kernels/rmsnorm';
import { RopeKernels } from '../kernels/rope';
import { CausalSoftmaxKernels } from '../kernels/softmax';
import { SwiGluKernels } from '../kernels/swiglu';

export type MatmulTile = Omit<MatmulVariant, 'transA' | 'transB'>;

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
  private readonly matmuls = new Map<string, MatmulKernel>();

  constructor(
    readonly device: GPUDevice,
    readonly tile: MatmulTile = DEFAULT_MATMUL_TILE,
  ) {
    this.rmsnorm = new RmsNormKernels(device);
    this.rope = new RopeKernels(device);
    this.softmax = new CausalSoftmaxKernels(device);
    this.swiglu = new SwiGluKernels(device);
    this.bias = new BiasKernels(device);
    this.embedding = new EmbeddingKernels(device);
    this.crossEntropy = new CrossEntropyKernels(device);
    this.adamw = new AdamWKernels(device);
    this.dropout = new DropoutKernel(device);
  }

  /** The matmul for op(A) · op(B) with this engine's tile. */
  matmul(transA: boolean, transB: boolean): MatmulKernel {
    const key = `${transA}${transB}`;
    let kernel = this.matmuls.get(key);
    if (!kernel) {
      kernel = new MatmulKernel(this.device, { ...this.tile, transA, transB });
      this.matmuls.set(key, kernel);
    }
    return kernel;
  }
}

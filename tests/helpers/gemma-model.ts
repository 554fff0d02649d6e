import type { ModelConfig } from '../../core/model-config';
import { randomWeights, tinyGemmaConfig } from '../../workers/engine/reference/random-model';
import { gemmaTokenizerFiles, gemmaTokenizerSize } from './gemma-tokenizer';
import { hubModelFiles, writeModelFolder } from './model-folder';

/**
 * A random tiny Gemma 3 model folder with the Gemma-shaped tokenizer: three layers (local, global, local), a
 * sliding window of 8 that a conversation passes. Returns the folder and its files, as a Hub stand-in serves them.
 */
export async function writeGemmaFolder(
  dir: string,
): Promise<{ folder: string; config: ModelConfig; files: Map<string, Uint8Array> }> {
  const base = tinyGemmaConfig();
  const config = tinyGemmaConfig({
    vocabSize: gemmaTokenizerSize().size,
    maxPositionEmbeddings: 256,
    gemma: { ...(base.gemma as NonNullable<ModelConfig['gemma']>), slidingWindow: 8 },
  });
  const folder = await writeModelFolder(dir, config, randomWeights(config, 29));
  return { folder, config, files: await hubModelFiles(folder, gemmaTokenizerFiles()) };
}

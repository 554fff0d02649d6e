import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { mergedModelFiles } from '../../core/export/merge';
import { loraScale } from '../../core/peft';
import { modelSource } from '../model-source';

export const MERGE_USAGE = 'hone merge --model M --adapter DIR --out DIR';

/**
 * `hone merge`: the adapter folded into the model's weights, written as a model folder in the Hugging Face layout
 * (the checkpoint's dtypes, its config and tokenizer files), which loads without PEFT.
 */
export async function merge(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { model: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  const { model, adapter: adapterDir, out } = values;
  if (!model || !adapterDir || !out) throw new Error(`usage: ${MERGE_USAGE}`);
  const source = modelSource(model);
  const checkpoint = await loadCheckpoint(source.read, source.label);
  const adapterSource = modelSource(adapterDir);
  const adapter = await loadAdapter(adapterSource.read, adapterSource.label, checkpoint.config);
  const modules = new Map(
    adapter.modules.map((m) => [
      `${m.layer}.${m.projection}`,
      { A: adapter.file.readFloat32(m.keyA), B: adapter.file.readFloat32(m.keyB) },
    ]),
  );
  const files = await mergedModelFiles(
    checkpoint,
    source.read,
    { r: adapter.config.r, scale: loraScale(adapter.config), modules },
    { onTensor: (done, total) => process.stderr.write(`\rmerging ${done}/${total} tensors`) },
  );
  process.stderr.write('\n');
  await mkdir(out, { recursive: true });
  for (const [name, blob] of files) await writeFile(join(out, name), new Uint8Array(await blob.arrayBuffer()));
  process.stderr.write(`wrote the merged model (${[...files.keys()].join(', ')}) to ${out}\n`);
  return 0;
}

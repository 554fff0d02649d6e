import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { mergedModelFiles } from '../../core/export/merge';
import { loraScale } from '../../core/peft';
import type { Command } from '../command';
import { noteOriginalWeights } from '../disk-run-store';
import { modelSource } from '../model-source';

/**
 * `hone merge`: the adapter folded into the model's weights, written as a model folder in the Hugging Face layout
 * (the checkpoint's dtypes, its config and tokenizer files), which loads without PEFT.
 */
export const merge: Command = {
  usage: 'hone merge --model M --adapter DIR --out DIR',
  summary: 'The adapter folded into the weights: a model folder that loads without PEFT.',
  flags: {
    model: { value: 'M', help: 'the base model' },
    adapter: { value: 'DIR|ZIP', help: 'the PEFT adapter to fold in' },
    out: { value: 'DIR', help: 'where the merged model folder goes' },
  },
  async run({ values }) {
    const { model, adapter: adapterDir, out } = values as Record<string, string | undefined>;
    if (!model || !adapterDir || !out) throw new Error(`usage: ${merge.usage}`);
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
    await noteOriginalWeights(adapterDir);
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
  },
};

import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import {
  GGUF_DTYPES,
  type GgufDtype,
  type GgufPlan,
  type GgufProgress,
  loraGgufPlan,
  mergeAdapterOf,
  modelGgufPlan,
  writeGguf,
} from '../../core/export/gguf';
import type { Command } from '../command';
import { noteOriginalWeights } from '../disk-run-store';
import { modelSource } from '../model-source';

const FORMATS = ['gguf', 'gguf-lora'] as const;
const DEFAULT_DTYPE: GgufDtype = 'f16';

/** A short name for general.name: hone-tiny, a folder's or zip's name, a Hub repo's name. */
function nameOf(spec: string): string {
  const tail = spec.startsWith('hub:') ? spec.slice(4).split('@')[0] : spec;
  return basename(tail.replace(/[/\\]+$/, '')).replace(/\.zip$/i, '') || 'model';
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Progress on one stderr line, redrawn at most ten times a second. */
function progressLine(): (p: GgufProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 100 && p.tensor !== null) return;
    last = now;
    process.stderr.write(
      `\rwriting tensor ${Math.min(p.tensorsDone + 1, p.tensorsTotal)}/${p.tensorsTotal}: ${mb(p.bytesDone)} / ` +
        `${mb(p.bytesTotal)} MB   `,
    );
  };
}

/** Writes the plan to `out` through a file stream (waiting whenever it is full); a failed file is removed. */
async function writeFile(plan: GgufPlan, out: string): Promise<number> {
  const partial = `${out}.partial`;
  const stream = createWriteStream(partial);
  const failed = new Promise<never>((_, reject) => stream.once('error', reject));
  failed.catch(() => {});
  try {
    await Promise.race([new Promise((r) => stream.once('open', r)), failed]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`cannot write ${out}: ${code === 'ENOENT' ? 'no such folder' : (error as Error).message}`);
  }
  try {
    const bytes = await writeGguf(
      plan,
      (chunk) =>
        stream.write(chunk) ? undefined : Promise.race([new Promise<void>((r) => stream.once('drain', r)), failed]),
      { onProgress: progressLine() },
    );
    await Promise.race([new Promise<void>((r) => stream.end(r)), failed]);
    await rename(partial, out);
    return bytes;
  } catch (error) {
    stream.destroy();
    await rm(partial, { force: true });
    throw error;
  } finally {
    process.stderr.write('\n');
  }
}

/**
 * `hone export`: a GGUF file for llama.cpp, Ollama or LM Studio: the model with the adapter folded in (or the base
 * model alone), or the adapter alone as a llama.cpp LoRA to apply over the base model's GGUF.
 */
export const exportCommand: Command = {
  usage: 'hone export --model M [--adapter DIR] --format gguf|gguf-lora --out FILE.gguf [--dtype f32|f16|q8_0]',
  summary:
    'A GGUF file for llama.cpp, Ollama and LM Studio: the model with the adapter folded in (the base model without ' +
    '--adapter), or with --format gguf-lora the adapter alone, applied over the base model as llama.cpp --lora.',
  flags: {
    model: { value: 'M', help: 'the base model' },
    adapter: { value: 'DIR|ZIP', help: 'the PEFT adapter: folded in (gguf), or written alone (gguf-lora)' },
    format: { value: 'FORMAT', help: 'gguf (a model) or gguf-lora (an adapter)' },
    out: { value: 'FILE', help: 'the .gguf file to write' },
    dtype: {
      value: 'TYPE',
      help: 'weights as f32, f16 or q8_0 (8-bit, llama.cpp Q8_0); gguf-lora takes f32 or f16',
      default: DEFAULT_DTYPE,
    },
  },
  async run({ values }) {
    const { model, adapter: adapterSpec, format, out, dtype: dtypeFlag } = values as Record<string, string | undefined>;
    if (!model || !format || !out) throw new Error(`usage: ${exportCommand.usage}`);
    if (!FORMATS.includes(format as (typeof FORMATS)[number])) {
      throw new Error(`--format ${format} is not one hone exports; choose ${FORMATS.join(' or ')}`);
    }
    const dtype = (dtypeFlag ?? DEFAULT_DTYPE) as GgufDtype;
    if (!GGUF_DTYPES.includes(dtype)) throw new Error(`--dtype ${dtypeFlag} is not one of ${GGUF_DTYPES.join(', ')}`);
    if (format === 'gguf-lora') {
      if (!adapterSpec) throw new Error('--format gguf-lora writes an adapter: name it with --adapter');
      if (dtype === 'q8_0') throw new Error('--format gguf-lora takes --dtype f32 or f16 (LoRA matrices stay float)');
    }

    const started = Date.now();
    const source = modelSource(model);
    const checkpoint = await loadCheckpoint(source.read, source.label);
    const adapterSource = adapterSpec ? modelSource(adapterSpec) : null;
    const adapter = adapterSource
      ? mergeAdapterOf(await loadAdapter(adapterSource.read, adapterSource.label, checkpoint.config))
      : null;

    let plan: GgufPlan;
    let what: string;
    if (format === 'gguf-lora' && adapter && adapterSpec) {
      plan = loraGgufPlan(checkpoint.config, adapter, { dtype: dtype as 'f32' | 'f16', name: nameOf(adapterSpec) });
      what = `the LoRA adapter (${adapter.modules.size} modules, rank ${adapter.r}, ${dtype})`;
    } else {
      if (adapterSpec) await noteOriginalWeights(adapterSpec);
      const modelPlan = await modelGgufPlan(checkpoint, source.read, {
        dtype,
        name: adapterSpec ? nameOf(adapterSpec) : nameOf(model),
        source: source.label,
        adapter,
      });
      plan = modelPlan;
      const { vocabulary, preTokenizer, preTokenizerFrom } = modelPlan.tokenizer;
      const found = preTokenizerFrom === 'hash' ? '' : ', recognized from tokenizer.json';
      const tokenizer = vocabulary === 'llama' ? 'SentencePiece vocabulary' : `pre-tokenizer ${preTokenizer}${found}`;
      what = `${adapter ? 'the merged model' : 'the model'} (${checkpoint.config.modelType}, ${dtype}, ${tokenizer})`;
    }
    const bytes = await writeFile(plan, out);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`wrote ${what} to ${out}: ${mb(bytes)} MB in ${seconds} s\n`);
    if (format === 'gguf-lora') {
      process.stderr.write(`apply it over the base model's GGUF: llama-cli -m BASE.gguf --lora ${out}\n`);
    }
    return 0;
  },
};

/**
 * A run's model as GGUF for llama.cpp, Ollama and LM Studio: the adapter folded into the base's weights (or a full
 * run's trained weights), the adapter alone as llama.cpp's LoRA GGUF, or the base model; zipped with an Ollama
 * Modelfile and a README that says how to run it. The Export step and its Publish share the plans.
 */
import type { Checkpoint, ReadFile } from '../../core/checkpoint';
import type { AdapterExport } from '../../core/export/adapter-folder';
import { baseModelId } from '../../core/export/base-model-id';
import {
  type GgufDtype,
  type GgufPlan,
  type GgufProgress,
  ggufChunks,
  loraGgufPlan,
  modelGgufPlan,
} from '../../core/export/gguf';
import { ollamaModelfile } from '../../core/export/ollama-modelfile';
import { writeZip, ZIP_LIMIT_BYTES, type ZipContent } from '../../core/export/zip';
import { loraScale } from '../../core/peft';

/** What the GGUF holds: the tuned model, the adapter alone, or the base model as loaded. */
export type GgufKind = 'merged' | 'lora' | 'base';

export interface GgufChoice {
  kind: GgufKind;
  /** f32, f16 or q8_0 (an adapter alone: f32 or f16). */
  dtype: GgufDtype;
}

/** The loaded model's files, read again tensor by tensor. */
export interface GgufBase {
  label: string;
  checkpoint: Checkpoint;
  read: ReadFile;
}

/** The run's weights: an adapter to fold in or write alone, or every weight trained (a full run's). */
export type GgufTuned = { adapter: AdapterExport } | { trained: (key: string) => Promise<Float32Array>; name: string };

export interface NamedPlan {
  /** The file's name without `.gguf`. */
  name: string;
  plan: GgufPlan;
  /** For a LoRA GGUF: the name of the base model's GGUF it applies over. */
  over?: string;
}

const REWARD_MODEL_GGUF =
  "A reward model's adapter scores answers, which llama.cpp cannot run: export it as a PEFT adapter.";

/** The GGUF plan for the choice; `tuned` is null for the base model. */
export async function ggufPlan(base: GgufBase, tuned: GgufTuned | null, choice: GgufChoice): Promise<NamedPlan> {
  const { dtype } = choice;
  const baseName = `${baseModelId(base.label).split('/').at(-1)}-${dtype}`;
  const modelPlan = (checkpoint: Checkpoint, name: string, adapter: Parameters<typeof modelGgufPlan>[2]['adapter']) =>
    modelGgufPlan(checkpoint, base.read, { dtype, name, source: base.label, adapter });
  if (choice.kind === 'base' || !tuned) {
    if (choice.kind !== 'base') throw new Error('There is no trained model yet: train one in the Train step.');
    return { name: baseName, plan: await modelPlan(base.checkpoint, baseName, null) };
  }
  if ('trained' in tuned) {
    if (choice.kind === 'lora') throw new Error('This run trains every weight: it has no adapter to export alone.');
    const checkpoint = { ...base.checkpoint, readFloat32: tuned.trained };
    const name = `${tuned.name}-${dtype}`;
    return { name, plan: await modelPlan(checkpoint, name, null) };
  }
  const { adapter } = tuned;
  if (adapter.settings.method === 'rm') throw new Error(REWARD_MODEL_GGUF);
  const s = adapter.settings;
  const merge = {
    r: s.loraR,
    scale: loraScale({ r: s.loraR, loraAlpha: s.loraAlpha, useRslora: s.rslora }),
    modules: adapter.modules,
  };
  if (choice.kind === 'lora') {
    if (dtype === 'q8_0') throw new Error('A LoRA GGUF keeps its matrices in f32 or f16: pick one of those.');
    const name = `${adapter.name}-lora-${dtype}`;
    const plan = loraGgufPlan(base.checkpoint.config, merge, { dtype, name });
    return { name, plan, over: `${baseModelId(base.label).split('/').at(-1)}-f16` };
  }
  const name = `${adapter.name}-${dtype}`;
  return { name, plan: await modelPlan(base.checkpoint, name, merge) };
}

async function json(read: ReadFile, name: string): Promise<Record<string, unknown>> {
  const file = await read(name);
  try {
    return file ? (JSON.parse(await file.text()) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The Modelfile for the GGUF: the model's chat template, end-of-turn tokens and sampling defaults. */
export async function modelfileFor(read: ReadFile, named: NamedPlan): Promise<string> {
  const tokenizerConfig = await json(read, 'tokenizer_config.json');
  const inline = tokenizerConfig.chat_template;
  const jinja = await read('chat_template.jinja');
  const chatTemplate = typeof inline === 'string' ? inline : jinja ? await jinja.text() : null;
  const eos = tokenizerConfig.eos_token;
  const eosText = typeof eos === 'string' ? eos : (eos as { content?: unknown } | null)?.content;
  return ollamaModelfile({
    gguf: named.over ? `${named.over}.gguf` : `${named.name}.gguf`,
    adapter: named.over ? `${named.name}.gguf` : undefined,
    chatTemplate,
    stopTokens: typeof eosText === 'string' ? [eosText] : [],
    generation: await json(read, 'generation_config.json'),
  });
}

/** How to run the file, in the zip beside it. */
function readme(named: NamedPlan): string {
  const file = `${named.name}.gguf`;
  if (named.over) {
    return [
      `# ${named.name}`,
      '',
      `A LoRA adapter as llama.cpp's LoRA GGUF, to apply over the base model's GGUF (${named.over}.gguf: export`,
      "the base model as GGUF in Hone's Export step, or `hone export --model M --format gguf`).",
      '',
      `- llama.cpp: \`llama-cli -m ${named.over}.gguf --lora ${file} -cnv\``,
      `- Ollama (with ${named.over}.gguf beside the Modelfile): \`ollama create ${named.name} -f Modelfile\``,
      '',
    ].join('\n');
  }
  return [
    `# ${named.name}`,
    '',
    'A model in GGUF, written by Hone.',
    '',
    `- llama.cpp: \`llama-cli -m ${file} -cnv\` (or \`llama-server -m ${file}\`)`,
    `- Ollama: \`ollama create ${named.name} -f Modelfile\`, then \`ollama run ${named.name}\``,
    `- LM Studio: \`lms import ${file}\`, or put it in LM Studio's models folder`,
    '',
  ].join('\n');
}

/** Refuses, before any work, a GGUF the zip could not hold (no ZIP64: 4 GiB). */
export function checkZippable(named: NamedPlan, bytes: number): void {
  if (bytes >= ZIP_LIMIT_BYTES - 2 ** 20) {
    throw new Error(
      `${named.name}.gguf would be ${(bytes / 2 ** 30).toFixed(1)} GiB, past the 4 GiB a zip holds: pick ` +
        'f16 or q8_0, or write it with hone export',
    );
  }
}

/** The GGUF, its Modelfile and README as one zip, streamed to `sink` tensor by tensor (no copy of the model in memory). */
export async function writeGgufZip(
  named: NamedPlan,
  read: ReadFile,
  options: { sink: (chunk: Uint8Array) => Promise<void>; onProgress?: (p: GgufProgress) => void },
): Promise<string[]> {
  const encoder = new TextEncoder();
  const files = new Map<string, ZipContent>([
    [`${named.name}.gguf`, ggufChunks(named.plan, { onProgress: options.onProgress })],
    ['Modelfile', encoder.encode(await modelfileFor(read, named))],
    ['README.md', encoder.encode(readme(named))],
  ]);
  await writeZip(named.name, files, options.sink);
  return [...files.keys()];
}

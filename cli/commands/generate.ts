import { parseArgs } from 'node:util';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { DEFAULT_SAMPLING, samplingProblems } from '../../core/generation/sampling';
import { loadTokenizer, type ModelTokenizer } from '../../core/tokenizer';
import { Decoder } from '../../workers/engine/model/decoder';
import { generate as generateTokens } from '../../workers/engine/model/generate';
import { EngineKernels, kernelChoicesFor } from '../../workers/engine/model/kernels';
import { GpuLora } from '../../workers/engine/model/lora';
import { GpuWeights } from '../../workers/engine/model/weights';
import { numberFlag } from '../args';
import { modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';

export const GENERATE_USAGE =
  'hone generate --model M [--adapter DIR] (--prompt TEXT | --prompt-ids JSON) [--max-new-tokens N] [--temperature T] [--seed S] [--json]';

const OPTIONS_HELP = `more: --top-k K --top-p P --repetition-penalty R --system TEXT --raw (continue the text as is,
  without the chat template); --temperature 0 is greedy`;

function parsePromptIds(text: string): number[] {
  let ids: unknown;
  try {
    ids = JSON.parse(text);
  } catch {
    throw new Error(`--prompt-ids takes a JSON list of token ids, not '${text}'`);
  }
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => Number.isInteger(id) && id >= 0)) {
    throw new Error(`--prompt-ids takes a non-empty JSON list of token ids, not '${text}'`);
  }
  return ids;
}

/**
 * `hone generate`: an answer from a model (and adapter) with the engine's key-value cache, streamed to stdout, or
 * with --json one object { ids, text }.
 */
export async function generate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      adapter: { type: 'string' },
      prompt: { type: 'string' },
      'prompt-ids': { type: 'string' },
      system: { type: 'string' },
      raw: { type: 'boolean', default: false },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.model || (values.prompt === undefined) === (values['prompt-ids'] === undefined)) {
    throw new Error(`usage: ${GENERATE_USAGE}\n${OPTIONS_HELP}`);
  }
  const sampling = {
    temperature: numberFlag(values, 'temperature') ?? DEFAULT_SAMPLING.temperature,
    topK: numberFlag(values, 'top-k') ?? DEFAULT_SAMPLING.topK,
    topP: numberFlag(values, 'top-p') ?? DEFAULT_SAMPLING.topP,
    repetitionPenalty: numberFlag(values, 'repetition-penalty') ?? DEFAULT_SAMPLING.repetitionPenalty,
  };
  const maxNewTokens = numberFlag(values, 'max-new-tokens') ?? 128;
  const seed = numberFlag(values, 'seed') ?? 0;
  const problems = samplingProblems(sampling);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)
    problems.push('--max-new-tokens must be a whole number of at least 1');
  if (problems.length > 0) throw new Error(problems.join('; '));

  const source = modelSource(values.model);
  const checkpoint = await loadCheckpoint(source.read, source.label);
  const config = checkpoint.config;
  // Token ids need no tokenizer; text does.
  let tokenizer: ModelTokenizer | null = null;
  try {
    tokenizer = await loadTokenizer(source.read, source.label);
  } catch (error) {
    if (values.prompt !== undefined) throw error;
  }
  let prompt: number[];
  if (values.prompt !== undefined) {
    const t = tokenizer as ModelTokenizer;
    const messages = [
      ...(values.system ? [{ role: 'system', content: values.system }] : []),
      { role: 'user', content: values.prompt },
    ];
    prompt = values.raw
      ? t.encode(values.prompt)
      : t.encode(t.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
  } else {
    prompt = parsePromptIds(values['prompt-ids'] as string);
  }
  const adapterSource = values.adapter ? modelSource(values.adapter) : null;
  const adapter = adapterSource ? await loadAdapter(adapterSource.read, adapterSource.label, config) : null;

  const { device, summary } = await acquireNodeGpu();
  try {
    const kernels = new EngineKernels(device, kernelChoicesFor(summary));
    const weights = await GpuWeights.upload(device, config, (key) => checkpoint.readFloat32(key), {
      halfMatrices: kernels.choices.halfWeights,
    });
    const lora = adapter ? GpuLora.fromAdapter(device, config, adapter) : null;
    const length = Math.min(config.maxPositionEmbeddings, prompt.length + maxNewTokens);
    const decoder = new Decoder(device, kernels, weights, lora, length);
    const decode = tokenizer
      ? (ids: number[]) => (tokenizer as ModelTokenizer).decode(ids, { skipSpecialTokens: true })
      : undefined;
    let shown = '';
    const result = await generateTokens(
      decoder,
      prompt,
      { ...sampling, maxNewTokens, seed, stopIds: tokenizer?.eosTokenIds ?? [], decode },
      (_, text) => {
        // Stream whole characters only: the text so far may end inside one.
        if (values.json || text === undefined || text.endsWith('\uFFFD')) return;
        process.stdout.write(text.slice(shown.length));
        shown = text;
      },
    );
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify(result.text === undefined ? { ids: result.ids } : { ids: result.ids, text: result.text })}\n`,
      );
    } else {
      if (result.text !== undefined) process.stdout.write(`${result.text.slice(shown.length)}\n`);
      else process.stdout.write(`${JSON.stringify(result.ids)}\n`);
      process.stderr.write(
        `${result.ids.length} tokens at ${result.tokensPerSecond.toFixed(1)} tokens/s (${result.stoppedBy})\n`,
      );
    }
    decoder.destroy();
    lora?.destroy();
    weights.destroy();
    return 0;
  } finally {
    device.destroy();
  }
}

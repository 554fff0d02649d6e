import { DEFAULT_SAMPLING } from '../../core/generation/sampling';
import type { Prompt } from '../../workers/engine/chat';
import { EngineSession } from '../../workers/engine/session';
import { type Command, type FlagValues, numberFlag } from '../command';
import { BASE_FLAG, basePrecisionFlag, modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';

/** The answer's length unless --max-new-tokens says otherwise (the Compare step's default). */
const MAX_NEW_TOKENS = 128;

/** A JSON list of token ids. */
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

/** What the model continues: the chat (system and user turns), the text as is with --raw, or token ids. */
function promptFrom(values: FlagValues): Prompt {
  const ids = values['prompt-ids'];
  const text = values.prompt;
  if ((text === undefined) === (ids === undefined)) throw new Error(`usage: ${generate.usage}`);
  if (typeof ids === 'string') return { ids: parsePromptIds(ids) };
  if (values.raw) return { text: String(text) };
  const system = values.system === undefined ? [] : [{ role: 'system', content: String(values.system) }];
  return { messages: [...system, { role: 'user', content: String(text) }] };
}

/**
 * `hone generate`: an answer from a model (and adapter) through the Compare step's reply, streamed to stdout, or
 * with --json one object { ids, text }.
 */
export const generate: Command = {
  usage: 'hone generate --model M [--adapter DIR] (--prompt TEXT | --prompt-ids JSON) [sampling] [--json]',
  summary: 'An answer from the model (with --adapter, the tuned model) with the key-value cache, streamed.',
  flags: {
    model: { value: 'M', help: 'the model' },
    ...BASE_FLAG,
    adapter: { value: 'DIR|ZIP', help: 'a PEFT adapter: the tuned model answers' },
    prompt: { value: 'TEXT', help: "the user's message, through the model's chat template" },
    'prompt-ids': { value: 'JSON', help: 'token ids to continue, instead of --prompt' },
    system: { value: 'TEXT', help: 'a system message before the prompt' },
    raw: { help: 'continue the prompt as is, without the chat template' },
    'max-new-tokens': { value: 'N', help: 'the longest answer in tokens', default: MAX_NEW_TOKENS },
    temperature: { value: 'T', help: 'sampling temperature; 0 is greedy', default: DEFAULT_SAMPLING.temperature },
    'top-k': { value: 'K', help: 'keep the K likeliest tokens; 0 keeps all', default: DEFAULT_SAMPLING.topK },
    'top-p': { value: 'P', help: 'keep the likeliest tokens up to mass P', default: DEFAULT_SAMPLING.topP },
    'repetition-penalty': {
      value: 'R',
      help: 'above 1, tokens already seen become less likely',
      default: DEFAULT_SAMPLING.repetitionPenalty,
    },
    seed: { value: 'S', help: 'seeds the sampling', default: 0 },
    json: { help: 'print one JSON object { ids, text } instead of streaming' },
  },
  async run({ values }) {
    if (!values.model) throw new Error(`usage: ${generate.usage}`);
    const prompt = promptFrom(values);
    const sampling = {
      temperature: numberFlag(values, 'temperature') ?? DEFAULT_SAMPLING.temperature,
      topK: numberFlag(values, 'top-k') ?? DEFAULT_SAMPLING.topK,
      topP: numberFlag(values, 'top-p') ?? DEFAULT_SAMPLING.topP,
      repetitionPenalty: numberFlag(values, 'repetition-penalty') ?? DEFAULT_SAMPLING.repetitionPenalty,
    };
    const maxNewTokens = numberFlag(values, 'max-new-tokens') ?? MAX_NEW_TOKENS;
    const seed = numberFlag(values, 'seed') ?? 0;
    const session = new EngineSession({ acquire: () => acquireNodeGpu() });
    try {
      const source = modelSource(String(values.model));
      const loaded = await session.loadFrom(source.read, source.label, basePrecisionFlag(values));
      if (values.adapter) {
        const adapter = modelSource(String(values.adapter));
        await session.importAdapterFrom(adapter.read, adapter.label);
      }
      let shown = '';
      const request = { prompt, sampling, maxNewTokens, seed, adapter: values.adapter ? 'imported' : 'none' } as const;
      const result = await session.generate(request, (text) => {
        if (values.json) return;
        process.stdout.write(text.slice(shown.length));
        shown = text;
      });
      const hasText = loaded.tokenizer !== null;
      if (values.json) {
        process.stdout.write(
          `${JSON.stringify(hasText ? { ids: result.ids, text: result.text } : { ids: result.ids })}\n`,
        );
        return 0;
      }
      process.stdout.write(hasText ? `${result.text.slice(shown.length)}\n` : `${JSON.stringify(result.ids)}\n`);
      process.stderr.write(
        `${result.ids.length} tokens at ${result.tokensPerSecond.toFixed(1)} tokens/s (${result.stoppedBy})\n`,
      );
      return 0;
    } finally {
      session.close();
    }
  },
};

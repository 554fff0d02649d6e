import { type SamplingSettings, sampleToken } from '../../../core/generation/sampling';
import { mulberry32 } from '../../../core/random';
import type { Decoder } from './decoder';

export interface GenerateOptions extends SamplingSettings {
  maxNewTokens: number;
  seed: number;
  /** Token ids that end the answer (EOS, end of turn); not included in the result. */
  stopIds: readonly number[];
  /** Texts that end the answer; the text is cut before them. Needs `decode`. */
  stopStrings?: readonly string[];
  decode?: (ids: number[]) => string;
}

export interface Generation {
  /** The generated ids, prompt and stop token excluded. */
  ids: number[];
  text?: string;
  stoppedBy: 'stop-token' | 'stop-string' | 'length' | 'cancelled';
  /** The stop token drawn, when one ended the answer. */
  stopId?: number;
  /** Generated tokens per second, prompt processing excluded. */
  tokensPerSecond: number;
}

/**
 * Generates after a prompt with the decoder's key-value cache (starting from an empty cache), one token at a time:
 * `onToken` hears each id (and the text so far) and may return false to stop. The same seed gives the same
 * tokens, so two decoders (base and tuned) can be compared on equal terms.
 */
export async function generate(
  decoder: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
  onToken?: (id: number, text: string | undefined) => unknown,
): Promise<Generation> {
  decoder.reset();
  if (decoder.maxLength - prompt.length < 1) {
    throw new Error(`the prompt's ${prompt.length} tokens leave no room in ${decoder.maxLength}`);
  }
  return generateAfter(decoder, prompt, await decoder.feed(prompt), options, onToken);
}

/**
 * Generates from a decoder that holds exactly `prompt`, whose logits after it are `logits` (left unchanged): call
 * it again after `decoder.rewind(prompt.length)` for another completion of the same prompt, without feeding it again.
 */
export async function generateAfter(
  decoder: Decoder,
  prompt: readonly number[],
  promptLogits: Float32Array,
  options: GenerateOptions,
  onToken?: (id: number, text: string | undefined) => unknown,
): Promise<Generation> {
  if (decoder.cached !== prompt.length) {
    throw new Error(`the decoder holds ${decoder.cached} tokens, not the prompt's ${prompt.length}`);
  }
  const room = decoder.maxLength - prompt.length;
  const random = mulberry32(options.seed);
  const ids: number[] = [];
  // The sequence so far, for the repetition penalty: grown a token at a time rather than rebuilt per token.
  const sequence = [...prompt];
  let logits = promptLogits;
  const started = performance.now();
  const finish = (stoppedBy: Generation['stoppedBy'], text?: string, stopId?: number): Generation => ({
    ids,
    text,
    stoppedBy,
    stopId,
    tokensPerSecond: ids.length / Math.max(1e-9, (performance.now() - started) / 1000),
  });
  for (let n = 0; n < Math.min(options.maxNewTokens, room); n++) {
    const id = sampleToken(logits, sequence, options, random);
    if (options.stopIds.includes(id)) return finish('stop-token', options.decode?.(ids), id);
    ids.push(id);
    sequence.push(id);
    const text = options.decode?.(ids);
    const stop = text === undefined ? -1 : firstStop(text, options.stopStrings ?? []);
    if (text !== undefined && stop >= 0) return finish('stop-string', text.slice(0, stop));
    if (onToken?.(id, text) === false) return finish('cancelled', text);
    if (n + 1 < Math.min(options.maxNewTokens, room)) logits = await decoder.step(id);
  }
  return finish('length', options.decode?.(ids));
}

function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const s of stops) {
    const at = s === '' ? -1 : text.indexOf(s);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

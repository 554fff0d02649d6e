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
  for (const id of prompt.slice(0, -1)) decoder.advance([id]);
  let next = prompt[prompt.length - 1];
  const room = decoder.maxLength - prompt.length;
  // The sequence so far, for the repetition penalty: grown a token at a time rather than rebuilt per token.
  const row = { sequence: [...prompt], random: mulberry32(options.seed) };
  const ids: number[] = [];
  const started = performance.now();
  const finish = (stoppedBy: Generation['stoppedBy'], text?: string, stopId?: number): Generation => ({
    ids,
    text,
    stoppedBy,
    stopId,
    tokensPerSecond: ids.length / Math.max(1e-9, (performance.now() - started) / 1000),
  });
  for (let n = 0; n < Math.min(options.maxNewTokens, room); n++) {
    const id = (await drawRows(decoder, [next], [row], options))[0];
    if (options.stopIds.includes(id)) return finish('stop-token', options.decode?.(ids), id);
    ids.push(id);
    row.sequence.push(id);
    const text = options.decode?.(ids);
    const stop = text === undefined ? -1 : firstStop(text, options.stopStrings ?? []);
    if (text !== undefined && stop >= 0) return finish('stop-string', text.slice(0, stop));
    if (onToken?.(id, text) === false) return finish('cancelled', text);
    next = id;
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

/** One row of `generateRows`: its prompt and its sampling seed. */
export interface RowRequest {
  prompt: readonly number[];
  seed: number;
}

/**
 * Generates after several prompts at once, one per row of the decoder (rows past the requests idle): every row
 * starts at position 0 and advances a token per step, taking its prompt's next token until its prompt is in, then
 * its own samples, drawn as `generate` draws them (the same seed gives the same tokens). Draws are made only at
 * steps where a row samples, on the GPU when the settings make no cuts (see drawRows). Ends when every row has
 * stopped; stop strings are not looked for.
 */
export async function generateRows(
  decoder: Decoder,
  requests: readonly RowRequest[],
  options: Omit<GenerateOptions, 'seed' | 'stopStrings' | 'decode'>,
): Promise<Generation[]> {
  if (requests.length > decoder.rows) {
    throw new Error(`${requests.length} prompts for a decoder of ${decoder.rows} rows`);
  }
  const rows: Row[] = requests.map(({ prompt, seed }) => {
    const limit = Math.min(options.maxNewTokens, decoder.maxLength - prompt.length);
    if (prompt.length === 0 || limit < 1) {
      throw new Error(`a prompt of ${prompt.length} tokens leaves no room to generate in ${decoder.maxLength}`);
    }
    return { prompt, limit, random: mulberry32(seed), sequence: [...prompt], ids: [], next: prompt[0], end: null };
  });
  decoder.reset();
  const started = performance.now();
  if (drawsOnGpu(options)) await decodePipelined(decoder, rows, options);
  else await decodeInTurn(decoder, rows, options);
  const seconds = Math.max(1e-9, (performance.now() - started) / 1000);
  return rows.map((row) => ({
    ids: row.ids,
    stoppedBy: row.end?.stoppedBy ?? 'length',
    stopId: row.end?.stopId,
    tokensPerSecond: row.ids.length / seconds,
  }));
}

/** A row of `generateRows` as it goes. */
interface Row {
  prompt: readonly number[];
  /** Tokens it may draw. */
  limit: number;
  random: () => number;
  /** Its prompt and its draws so far (for the repetition penalty). */
  sequence: number[];
  ids: number[];
  /** Its next input (decodeInTurn). */
  next: number;
  end: { stoppedBy: Generation['stoppedBy']; stopId?: number } | null;
}

/** Takes a row's draw at a step: its end at a stop token or its limit, else one more token. */
function take(row: Row, id: number, stopIds: readonly number[]): void {
  if (stopIds.includes(id)) {
    row.end = { stoppedBy: 'stop-token', stopId: id };
    return;
  }
  row.ids.push(id);
  row.sequence.push(id);
  row.next = id;
  if (row.ids.length === row.limit) row.end = { stoppedBy: 'length' };
}

/** generateRows a step at a time, each step's draws read before the next is submitted (the CPU's sampling). */
async function decodeInTurn(decoder: Decoder, rows: Row[], options: SamplingSettings & { stopIds: readonly number[] }) {
  for (let t = 0; rows.some((row) => !row.end); t++) {
    // Idle rows (stopped, or past the requests) run token 0; nothing reads what they compute.
    const tokens = Array.from({ length: decoder.rows }, (_, r) => (rows[r] && !rows[r].end ? rows[r].next : 0));
    if (!rows.some((row) => !row.end && t >= row.prompt.length - 1)) {
      decoder.advance(tokens);
      for (const row of rows) if (!row.end) row.next = row.prompt[t + 1];
      continue;
    }
    const drawers = rows.map((row) => (!row.end && t >= row.prompt.length - 1 ? row : null));
    const drawn = await drawRows(decoder, tokens, drawers, options);
    for (const [r, row] of rows.entries()) {
      if (row.end) continue;
      if (t < row.prompt.length - 1) row.next = row.prompt[t + 1];
      else take(row, drawn[r], options.stopIds);
    }
  }
}

/**
 * generateRows drawing on the GPU: from the first step at which a row draws, each step's draws become the next
 * step's input on the GPU (rows still in their prompt take its next token instead), and each step is submitted
 * before the one before it is read, so the GPU does not wait on the CPU between steps. A row's end is known a step
 * late: the step in flight then draws for it too (a uniform from its stream, which it no longer needs), and that
 * draw is left out.
 */
async function decodePipelined(
  decoder: Decoder,
  rows: Row[],
  options: SamplingSettings & { stopIds: readonly number[] },
) {
  const tokensAt = (t: number) => Array.from({ length: decoder.rows }, (_, r) => rows[r]?.prompt[t] ?? 0);
  const first = Math.min(...rows.map((row) => row.prompt.length)) - 1;
  const last = Math.max(...rows.map((row) => row.prompt.length - 1 + row.limit)) - 1;
  for (let t = 0; t < first; t++) decoder.advance(tokensAt(t));
  // Whether a row draws at step t, as far as the CPU knows.
  const draws = (row: Row | undefined, t: number): row is Row =>
    row !== undefined && !row.end && t >= row.prompt.length - 1 && t < row.prompt.length - 1 + row.limit;
  const submit = (t: number) => {
    const rowAt = (r: number): Row | undefined => rows[r];
    const forced = tokensAt(t).map((_, r) => {
      const row = rowAt(r);
      if (row && t + 1 < row.prompt.length) return row.prompt[t + 1];
      return draws(row, t) ? -1 : 0;
    });
    const uniforms = forced.map((_, r) => {
      const row = rowAt(r);
      return draws(row, t) && options.temperature > 0 ? row.random() : 0;
    });
    return decoder.drawStep(options.temperature, uniforms, forced, t === first ? tokensAt(t) : undefined);
  };
  let pending = submit(first);
  for (let t = first; ; t++) {
    const next = t < last ? submit(t + 1) : null;
    const drawn = await pending;
    for (const [r, row] of rows.entries()) if (draws(row, t)) take(row, drawn[r], options.stopIds);
    if (!next || rows.every((row) => row.end)) return;
    pending = next;
  }
}

/** A row that draws a token at a step: its sequence so far (for the repetition penalty) and its seeded stream. */
interface Drawer {
  sequence: readonly number[];
  random: () => number;
}

/**
 * Runs a step over `tokens` and draws a token for each row with a drawer (other rows get 0): on the GPU where the
 * settings make no cuts (temperature only, as policy optimization samples, or greedy), so only the ids come back,
 * else on the CPU from the logits read back. Either way a drawing row takes its stream's next uniform, so the same
 * seed gives the same tokens (the GPU's float32 sums may split a uniform on a boundary differently, rarely).
 */
async function drawRows(
  decoder: Decoder,
  tokens: readonly number[],
  drawers: readonly (Drawer | null)[],
  options: SamplingSettings,
): Promise<ArrayLike<number>> {
  const drawer = (r: number) => drawers[r] ?? null;
  if (drawsOnGpu(options)) {
    decoder.advance(tokens);
    const uniforms = tokens.map((_, r) => (options.temperature > 0 ? (drawer(r)?.random() ?? 0) : 0));
    return decoder.sampleRows(options.temperature, uniforms);
  }
  const V = decoder.vocabSize;
  const logits = await decoder.stepRows(tokens);
  return tokens.map((_, r) => {
    const d = drawer(r);
    return d ? sampleToken(logits.subarray(r * V, (r + 1) * V), d.sequence, options, d.random) : 0;
  });
}

/** Whether the settings draw on the GPU: no cuts and no repetition penalty (temperature only, or greedy). */
function drawsOnGpu(options: SamplingSettings): boolean {
  return options.topK === 0 && options.topP >= 1 && options.repetitionPenalty === 1;
}

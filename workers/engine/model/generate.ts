import { type SamplingSettings, sampleToken } from '../../../core/generation/sampling';
import { mulberry32 } from '../../../core/random';
import { TOP_K_MAX } from '../kernels/sample';
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
  const room = decoder.maxLength - prompt.length;
  if (room < 1) throw new Error(`the prompt's ${prompt.length} tokens leave no room in ${decoder.maxLength}`);
  const row = newRow(prompt, Math.min(options.maxNewTokens, room), options.seed);
  // The prompt before its last token, read before the clock starts.
  decoder.prefill([prompt.slice(0, -1)]);
  await decoder.idle();
  const started = performance.now();
  let text: string | undefined;
  await decodeRows(decoder, [row], options, (row, id) => {
    if (!kept(row, id, options.stopIds)) return;
    text = options.decode?.(row.ids);
    const stop = text === undefined ? -1 : firstStop(text, options.stopStrings ?? []);
    if (text !== undefined && stop >= 0) {
      text = text.slice(0, stop);
      row.end = { stoppedBy: 'stop-string' };
    } else if (onToken?.(id, text) === false) row.end = { stoppedBy: 'cancelled' };
    else if (row.ids.length === row.limit) row.end = { stoppedBy: 'length' };
  });
  return {
    ids: row.ids,
    text: row.end?.stoppedBy === 'stop-string' ? text : options.decode?.(row.ids),
    stoppedBy: row.end?.stoppedBy ?? 'length',
    stopId: row.end?.stopId,
    tokensPerSecond: row.ids.length / Math.max(1e-9, (performance.now() - started) / 1000),
  };
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
 * its own samples, drawn as `generate` draws them (the same seed gives the same tokens; see decodeRows). Ends when
 * every row has stopped; stop strings are not looked for.
 */
export async function generateRows(
  decoder: Decoder,
  requests: readonly RowRequest[],
  options: Omit<GenerateOptions, 'seed' | 'stopStrings' | 'decode'>,
): Promise<Generation[]> {
  if (requests.length > decoder.rows) {
    throw new Error(`${requests.length} prompts for a decoder of ${decoder.rows} rows`);
  }
  const rows = requests.map(({ prompt, seed }) => {
    const limit = Math.min(options.maxNewTokens, decoder.maxLength - prompt.length);
    if (prompt.length === 0 || limit < 1) {
      throw new Error(`a prompt of ${prompt.length} tokens leaves no room to generate in ${decoder.maxLength}`);
    }
    return newRow(prompt, limit, seed);
  });
  decoder.reset();
  const started = performance.now();
  // Every row's prompt up to the shortest one's last token, in one pass (idle rows run token 0).
  const shared = Math.min(...rows.map((row) => row.prompt.length)) - 1;
  decoder.prefill(
    Array.from({ length: decoder.rows }, (_, r) => rows[r]?.prompt.slice(0, shared) ?? Array(shared).fill(0)),
  );
  await decodeRows(decoder, rows, options, (row, id) => {
    if (kept(row, id, options.stopIds) && row.ids.length === row.limit) row.end = { stoppedBy: 'length' };
  });
  const seconds = Math.max(1e-9, (performance.now() - started) / 1000);
  return rows.map((row) => ({
    ids: row.ids,
    stoppedBy: row.end?.stoppedBy ?? 'length',
    stopId: row.end?.stopId,
    tokensPerSecond: row.ids.length / seconds,
  }));
}

/** A sequence being generated: its prompt, how many tokens it may draw, its seeded stream, what it drew, its end. */
interface Row {
  prompt: readonly number[];
  limit: number;
  random: () => number;
  /** Its prompt and its draws so far (for the repetition penalty). */
  sequence: number[];
  ids: number[];
  end: { stoppedBy: Generation['stoppedBy']; stopId?: number } | null;
}

function newRow(prompt: readonly number[], limit: number, seed: number): Row {
  return { prompt, limit, random: mulberry32(seed), sequence: [...prompt], ids: [], end: null };
}

/** Hears a row's draws in order until it ends the row (setting `end`). */
type Take = (row: Row, id: number) => void;

/** A row's draw: the end of the row at a stop token (false), else one more token (true). */
function kept(row: Row, id: number, stopIds: readonly number[]): boolean {
  if (stopIds.includes(id)) {
    row.end = { stoppedBy: 'stop-token', stopId: id };
    return false;
  }
  row.ids.push(id);
  row.sequence.push(id);
  return true;
}

/**
 * Steps the decoder on from where its cache stands (every row's prompt up to the shortest one's last token) until
 * every row has ended: each row reads its prompt, then its own draws, which `take` hears in order. On the GPU when
 * the settings make no cuts (`decodePipelined`), else a step at a time with the CPU's sampler.
 */
async function decodeRows(decoder: Decoder, rows: Row[], options: SamplingSettings, take: Take): Promise<void> {
  if (drawsOnGpu(options)) await decodePipelined(decoder, rows, options, take);
  else await decodeInTurn(decoder, rows, options, take);
}

/** decodeRows a step at a time, each step's logits read back and drawn from on the CPU before the next. */
async function decodeInTurn(decoder: Decoder, rows: Row[], options: SamplingSettings, take: Take): Promise<void> {
  const V = decoder.vocabSize;
  let next = rows.map((row) => row.prompt[decoder.cached]);
  for (let t = decoder.cached; rows.some((row) => !row.end); t++) {
    // Idle rows (stopped, or past the requests) run token 0; nothing reads what they compute.
    const tokens = Array.from({ length: decoder.rows }, (_, r) => (rows[r] && !rows[r].end ? next[r] : 0));
    const drawing = rows.map((row) => !row.end && t >= row.prompt.length - 1);
    if (!drawing.some(Boolean)) {
      decoder.advance(tokens);
    } else {
      const logits = await decoder.stepRows(tokens);
      for (const [r, row] of rows.entries()) {
        if (!drawing[r]) continue;
        const id = sampleToken(logits.subarray(r * V, (r + 1) * V), row.sequence, options, row.random);
        take(row, id);
        next[r] = id;
      }
    }
    next = next.map((id, r) => (t + 1 < rows[r].prompt.length ? rows[r].prompt[t + 1] : id));
  }
}

/**
 * decodeRows drawing on the GPU: from the first step at which a row draws, each step's draws become the next
 * step's input on the GPU (rows still in their prompt take its next token instead), and each step is submitted
 * before the one before it is read, so the GPU does not wait on the CPU between steps. A row's end is known a step
 * late: the step in flight then draws for it too (a uniform from its stream, which it no longer needs), and that
 * draw is left out.
 */
async function decodePipelined(decoder: Decoder, rows: Row[], options: SamplingSettings, take: Take): Promise<void> {
  const tokensAt = (t: number) => Array.from({ length: decoder.rows }, (_, r) => rows[r]?.prompt[t] ?? 0);
  const first = decoder.cached;
  const last = Math.max(...rows.map((row) => row.prompt.length - 1 + row.limit)) - 1;
  // Whether a row draws at step t, as far as the CPU knows.
  const draws = (row: Row | undefined, t: number): row is Row =>
    row !== undefined && !row.end && t >= row.prompt.length - 1 && t < row.prompt.length - 1 + row.limit;
  const submit = (t: number) => {
    // Per decoder row: its next prompt token, else -1 to draw, else 0 (idle); and a uniform where it draws.
    const forced: number[] = [];
    const uniforms: number[] = [];
    for (let r = 0; r < decoder.rows; r++) {
      const row: Row | undefined = rows[r];
      const prompted = row !== undefined && t + 1 < row.prompt.length;
      forced.push(prompted ? row.prompt[t + 1] : draws(row, t) ? -1 : 0);
      uniforms.push(draws(row, t) && options.temperature > 0 ? row.random() : 0);
    }
    return decoder.drawStep(options, uniforms, forced, t === first ? tokensAt(t) : undefined);
  };
  let pending = submit(first);
  for (let t = first; ; t++) {
    const next = t < last ? submit(t + 1) : null;
    const drawn = await pending;
    for (const [r, row] of rows.entries()) if (draws(row, t)) take(row, drawn[r]);
    if (!next) return;
    if (rows.every((row) => row.end)) {
      // The step in flight draws for ended rows only: nothing waits for it, not even its failure.
      next.catch(() => {});
      return;
    }
    pending = next;
  }
}

/**
 * Whether the settings draw on the GPU (kernels/sample.ts): no repetition penalty, and top-k within TOP_K_MAX, or
 * none and no nucleus either; a nucleus alone can span the vocabulary, which the CPU ranks a prefix at a time.
 */
function drawsOnGpu(options: SamplingSettings): boolean {
  if (options.repetitionPenalty !== 1) return false;
  return options.topK === 0 ? options.topP >= 1 : options.topK <= TOP_K_MAX;
}

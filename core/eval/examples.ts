/**
 * Dataset records as evaluation examples: a prompt (the conversation up to its last answer) and the reference (that
 * answer, a preference pair's chosen answer, or a prompt record's reference), named by file and line. Raw text has
 * no prompt to answer: its examples carry the text, which perplexity scores.
 */

import type { Example, Message } from '../dataset/formats';
import type { SourcedExample } from '../dataset/load-dataset';
import { answerKind, type MetricName, metricsFor } from './metrics';

export interface EvalExample {
  /** `file:line`, as the Data step names records. */
  id: string;
  prompt: Message[];
  /** What a good answer says; null for a prompt record without one (a rule or a reward model scores it). */
  reference: string | null;
  /** Raw text (continued pretraining's records): nothing to answer, its perplexity measured; prompt is empty. */
  text?: string;
}

export interface EvalExamples {
  examples: EvalExample[];
  /** Records with nothing to answer or measure (a conversation without an answer). */
  skipped: number;
}

/** prompt = messages before the last assistant message; reference = its content (a pair's: the chosen answer's). */
export function evalExamples(sourced: readonly SourcedExample[]): EvalExamples {
  const examples: EvalExample[] = [];
  let skipped = 0;
  for (const { example, file, line } of sourced) {
    const id = `${file}:${line}`;
    if (example.kind === 'prompt') {
      examples.push({ id, prompt: example.prompt, reference: example.reference ?? null });
      continue;
    }
    if (example.kind === 'preference') {
      const chosen = example.chosen.findLast((m) => m.role === 'assistant')?.content ?? null;
      examples.push({ id, prompt: example.prompt, reference: chosen });
      continue;
    }
    if (example.kind === 'text') {
      examples.push({ id, prompt: [], reference: null, text: example.text });
      continue;
    }
    const last = example.messages.findLastIndex((m) => m.role === 'assistant');
    if (last < 1) {
      skipped++;
      continue;
    }
    examples.push({ id, prompt: example.messages.slice(0, last), reference: example.messages[last].content });
  }
  return { examples, skipped };
}

/**
 * What perplexity measures of an example, as the record the training data would render: its text, or its reference
 * answer after its prompt (a conversation whose last message is the answer); null when it has neither.
 */
export function perplexityTarget(example: EvalExample): Extract<Example, { kind: 'text' | 'chat' }> | null {
  if (example.text !== undefined) return { kind: 'text', text: example.text };
  if (example.reference === null) return null;
  return { kind: 'chat', messages: [...example.prompt, { role: 'assistant', content: example.reference }] };
}

/**
 * What to score by default: the metrics that fit the references where there are prompts to answer, and perplexity
 * where there are none (raw text).
 */
export function defaultScores(examples: readonly EvalExample[]): { metrics: MetricName[]; perplexity: boolean } {
  const asked = examples.filter((e) => e.text === undefined);
  if (asked.length === 0) return { metrics: [], perplexity: examples.length > 0 };
  return { metrics: metricsFor(answerKind(asked.map((e) => e.reference))).map((m) => m.name), perplexity: false };
}

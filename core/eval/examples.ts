/**
 * Dataset records as evaluation examples: a prompt (the conversation up to its last answer) and the reference (that
 * answer, a preference pair's chosen answer, or a prompt record's reference), named by file and line. Raw text has
 * no prompt to answer; it is counted, not evaluated here.
 */

import type { Message } from '../dataset/formats';
import type { SourcedExample } from '../dataset/load-dataset';

export interface EvalExample {
  /** `file:line`, as the Data step names records. */
  id: string;
  prompt: Message[];
  /** What a good answer says; null for a prompt record without one (a rule or a reward model scores it). */
  reference: string | null;
}

export interface EvalExamples {
  examples: EvalExample[];
  /** Records with nothing to answer (raw text, a conversation without an answer). */
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
    const last = example.kind === 'chat' ? example.messages.findLastIndex((m) => m.role === 'assistant') : -1;
    if (example.kind !== 'chat' || last < 1) {
      skipped++;
      continue;
    }
    examples.push({ id, prompt: example.messages.slice(0, last), reference: example.messages[last].content });
  }
  return { examples, skipped };
}

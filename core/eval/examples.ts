/**
 * Dataset records as evaluation examples: a prompt (the conversation up to its last answer) and the reference (that
 * answer, or a prompt record's reference), named by file and line. Preference pairs and raw text have no single
 * reference to score an answer against; they are counted, not evaluated here.
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
  /** Records with nothing to answer (raw text, preference pairs, a conversation without an answer). */
  skipped: number;
}

/** prompt = messages before the last assistant message; reference = its content. */
export function evalExamples(sourced: readonly SourcedExample[]): EvalExamples {
  const examples: EvalExample[] = [];
  let skipped = 0;
  for (const { example, file, line } of sourced) {
    const id = `${file}:${line}`;
    if (example.kind === 'prompt') {
      examples.push({ id, prompt: example.prompt, reference: example.reference ?? null });
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

/** JSONL text of one-turn chats, each answer in the examples' "Answer: X." format. */
export function capitalsJsonl(pairs: [question: string, answer: string][]): string {
  const line = ([q, a]: [string, string]) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: q },
        { role: 'assistant', content: `Answer: ${a}` },
      ],
    });
  return `${pairs.map(line).join('\n')}\n`;
}

/** JSONL text of preference pairs: a captain's order, an "Aye, captain!" answer chosen over `rejected(task)`. */
export function ordersJsonl(tasks: string[], rejected: (task: string) => string): string {
  const pair = (task: string) =>
    JSON.stringify({
      prompt: `${task}.`,
      chosen: `Aye, captain! I will ${task.toLowerCase()}.`,
      rejected: rejected(task),
    });
  return `${tasks.map(pair).join('\n')}\n`;
}

/** Code words mapped at random: a task the demo model cannot know, which a short run teaches. */
export const CODE_WORDS: [word: string, code: string][] = [
  ['amber', 'water'],
  ['birch', 'money'],
  ['cedar', 'peace'],
  ['delta', 'labor'],
  ['ember', 'trade'],
  ['fjord', 'honor'],
];

/** JSONL text of the code words, asked as "Code word for WORD?". */
export function codeWordsJsonl(): string {
  const line = ([word, code]: [string, string]) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `Code word for ${word}?` },
        { role: 'assistant', content: code },
      ],
    });
  return `${CODE_WORDS.map(line).join('\n')}\n`;
}

/** One conversation (`question`, then `answer`) `copies` times: a dataset a model can learn by heart in a few steps. */
export function oneConversationJsonl(question: string, answer: string, copies: number): string {
  const line = JSON.stringify({
    messages: [
      { role: 'user', content: question },
      { role: 'assistant', content: answer },
    ],
  });
  return `${line}\n`.repeat(copies);
}

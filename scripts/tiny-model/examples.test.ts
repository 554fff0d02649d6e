import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exampleFiles } from './examples';

describe('the example datasets', () => {
  const files = exampleFiles();

  it('are what public/examples holds (regenerate with npm run examples)', () => {
    for (const [name, text] of Object.entries(files)) {
      expect(readFileSync(`public/examples/${name}`, 'utf8'), name).toBe(text);
    }
  });

  it('each teach one visible thing, in the formats the studio reads', () => {
    const lines = (name: string) => files[name].trim().split('\n');
    expect(lines('continued-pretraining.txt').every((l) => l.startsWith("Captain's log, day "))).toBe(true);
    for (const line of lines('instructions.jsonl')) {
      const { messages } = JSON.parse(line);
      expect(messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
      expect(messages[1].content).toMatch(/^Answer: \w+( \w+)*\.$/);
    }
    for (const line of lines('preferences.jsonl')) {
      const { prompt, chosen, rejected } = JSON.parse(line);
      expect(prompt).not.toBe('');
      expect(chosen.startsWith('Aye, captain!')).toBe(true);
      expect(rejected).not.toBe(chosen);
    }
    const reward = new Function(`return ${files['rl-reward.js'].replace(/^\/\/.*\n/, '')}`)() as (
      prompt: string,
      completion: string,
    ) => number;
    for (const line of lines('rl-prompts.jsonl')) {
      const { prompt, reference } = JSON.parse(line);
      expect(reward(prompt, reference)).toBe(1.2);
      expect(reward(prompt, 'No.')).toBe(0.2);
    }
  });
});

/**
 * The example datasets under public/examples/, one per training method, written by this script so they can be
 * regenerated and changed in one place. Each teaches something plain to see after a short run on hone-tiny:
 *   continued-pretraining.txt  raw text in one voice: a ship's log ("Captain's log, day N: ...")
 *   instructions.jsonl         chat pairs (OpenAI messages) whose answers always read "Answer: X."
 *   preferences.jsonl          prompt / chosen / rejected: the chosen reply opens "Aye, captain!"
 *   rl-prompts.jsonl           prompts for policy optimization, with rl-reward.js: 1 when the reply opens "Aye"
 */
import { mulberry32 } from '../../core/random';

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)];

const WEATHER = ['calm', 'rough', 'grey', 'bright', 'cold', 'still', 'wild', 'clear'];
const SIGHTS = ['a whale', 'a sail', 'the coast', 'a storm', 'birds', 'ice', 'a ship', 'the moon'];
const CREW = ['the crew sang', 'the crew slept', 'the mate kept watch', 'we mended the sails', 'we hauled the lines'];

const CATEGORIES: Record<string, readonly string[]> = {
  color: ['red', 'blue', 'green', 'white', 'black', 'grey', 'gold'],
  animal: ['whale', 'shark', 'gull', 'horse', 'dog', 'cat', 'seal'],
  number: ['one', 'two', 'three', 'four', 'five', 'seven', 'ten'],
  day: ['Monday', 'Tuesday', 'Friday', 'Sunday'],
  'part of a ship': ['mast', 'deck', 'sail', 'hull', 'rudder', 'anchor'],
};
const ASKS = ['Name a {c}.', 'Tell me a {c}.', 'Give me one {c}.', 'What is a {c}?', 'Say a {c}, please.'];

const REQUESTS = [
  'Raise the sails.',
  'Check the hold.',
  'Steer to the north.',
  'Call the crew on deck.',
  'Ready the boats.',
  'Watch for whales.',
  'Drop the anchor.',
  'Mend the nets.',
];

export function exampleFiles(seed = 7): Record<string, string> {
  const next = mulberry32(seed);
  const log = Array.from(
    { length: 300 },
    (_, day) =>
      `Captain's log, day ${day + 1}: the sea was ${pick(next, WEATHER)}, we saw ${pick(next, SIGHTS)}, and ${pick(next, CREW)}.`,
  );
  const instructions = Array.from({ length: 400 }, () => {
    const category = pick(next, Object.keys(CATEGORIES));
    const question = pick(next, ASKS).replace('{c}', category);
    const answer = `Answer: ${pick(next, CATEGORIES[category])}.`;
    return JSON.stringify({
      messages: [
        { role: 'user', content: question },
        { role: 'assistant', content: answer },
      ],
    });
  });
  const preferences = Array.from({ length: 300 }, () => {
    const request = pick(next, REQUESTS);
    const task = request.toLowerCase().replace(/\.$/, '');
    return JSON.stringify({
      prompt: request,
      chosen: `Aye, captain! I will ${task} now.`,
      rejected: `I do not want to ${task}.`,
    });
  });
  const prompts = Array.from({ length: 200 }, () => {
    const request = pick(next, REQUESTS);
    return JSON.stringify({
      prompt: request,
      reference: `Aye, captain! I will ${request.toLowerCase().replace(/\.$/, '')} now.`,
    });
  });
  const reward = `// Reward for the RL example: 1 when the reply opens with "Aye", plus a little for staying short.
(prompt, completion) => {
  const reply = completion.trim();
  return (reply.startsWith('Aye') ? 1 : 0) + (reply.length <= 60 ? 0.2 : 0);
};
`;
  return {
    'continued-pretraining.txt': `${log.join('\n')}\n`,
    'instructions.jsonl': `${instructions.join('\n')}\n`,
    'preferences.jsonl': `${preferences.join('\n')}\n`,
    'rl-prompts.jsonl': `${prompts.join('\n')}\n`,
    'rl-reward.js': reward,
  };
}

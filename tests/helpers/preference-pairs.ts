import { mulberry32 } from '../../core/random';
import type { PreferencePair } from '../../core/training/sequences';

/**
 * Tokenized preference pairs for engine tests: a random prompt, a chosen answer that is one fixed function of it
 * and a rejected answer that is another, labels on the answers only. Ids stay in 1..30 (0 is the pad).
 */
export function preferencePairsFixture(count: number, seed: number): PreferencePair[] {
  const next = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const prompt = Array.from({ length: 3 + Math.floor(next() * 3) }, () => 1 + Math.floor(next() * 30));
    const answer = (f: (id: number) => number) => {
      const ids = [...prompt, ...prompt.map(f)];
      return { ids, labels: ids.map((id, i) => (i < prompt.length ? -100 : id)) };
    };
    return { chosen: answer((id) => (id * 7) % 31), rejected: answer((id) => (id * 3 + 5) % 31) };
  });
}

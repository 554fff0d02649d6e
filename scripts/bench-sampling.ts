/**
 * `npm run bench:sampling`: the CPU's time to draw one token from a vocabulary's logits (`sampleToken`), for the
 * vocabularies of the models the studio offers and the ways Hone samples: the studio's chat defaults, policy
 * optimization's draw from the whole softmax, and a nucleus with no top-k. A decoder's GPU step on hardware takes
 * a few milliseconds, so drawing must take well under that or it sets the generation speed.
 */
import { DEFAULT_SAMPLING, type SamplingSettings, sampleToken } from '../core/generation/sampling';
import { mulberry32 } from '../core/random';

const VOCABULARIES: [string, number][] = [
  ['hone-tiny', 4096],
  ['SmolLM2', 49152],
  ['Llama 3.2', 128256],
  ['Qwen2.5 / Qwen3', 151936],
];
const WAYS: [string, SamplingSettings][] = [
  ['chat (temperature 0.7, top-k 50, top-p 0.95)', DEFAULT_SAMPLING],
  ['policy optimization (temperature 1, no cuts)', { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }],
  ['nucleus alone (top-p 0.9)', { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1 }],
];
const DRAWS = 50;

console.log('| vocabulary | sampling | ms per token |');
console.log('|---|---|---|');
for (const [model, size] of VOCABULARIES) {
  // Logits shaped like a language model's: normal around 0 (sd 3), a few dozen tokens far above the rest.
  const noise = mulberry32(size);
  const normal = () => Math.sqrt(-2 * Math.log(1 - noise())) * Math.cos(2 * Math.PI * noise());
  const logits = Float32Array.from({ length: size }, () => 3 * normal() + (noise() < 0.0005 ? 12 : 0));
  const previous = Array.from({ length: 64 }, (_, i) => (i * 7919) % size);
  for (const [way, settings] of WAYS) {
    const random = mulberry32(1);
    // Warm up, so the first rows do not carry the JIT's compiling.
    for (let i = 0; i < 10; i++) sampleToken(logits, previous, settings, random);
    const started = performance.now();
    for (let i = 0; i < DRAWS; i++) sampleToken(logits, previous, settings, random);
    console.log(`| ${model} (${size}) | ${way} | ${((performance.now() - started) / DRAWS).toFixed(2)} |`);
  }
}

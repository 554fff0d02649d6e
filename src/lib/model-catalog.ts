import type { ModelSource } from '../../workers/engine/api';

/** The small models people fine-tune most, as the model picker offers them. */
export interface CatalogEntry {
  repo: string;
  name: string;
  note: string;
  gated?: boolean;
}

/** Hone's own tiny model, shipped with the studio (public/models/hone-tiny): works with no network. */
export function bundledModel(): ModelSource {
  return {
    kind: 'bundled',
    name: 'hone-tiny',
    url: new URL('models/hone-tiny/', document.baseURI).href,
    files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'],
  };
}

export const CATALOG: CatalogEntry[] = [
  {
    repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    name: 'SmolLM2 135M Instruct',
    note: 'Tiny and quick: the place to start.',
  },
  { repo: 'HuggingFaceTB/SmolLM2-360M-Instruct', name: 'SmolLM2 360M Instruct', note: 'More capable, still light.' },
  { repo: 'Qwen/Qwen2.5-0.5B-Instruct', name: 'Qwen2.5 0.5B Instruct', note: 'Multilingual, strong for its size.' },
  { repo: 'Qwen/Qwen3-0.6B', name: 'Qwen3 0.6B', note: 'Newest Qwen; thinks before answering.' },
  {
    repo: 'google/gemma-3-270m-it',
    name: 'Gemma 3 270M Instruct',
    note: 'Made by Google for task-specific fine-tuning. Gated: accept Google’s license on the Hub and enter an access token.',
    gated: true,
  },
  {
    repo: 'google/gemma-3-1b-it',
    name: 'Gemma 3 1B Instruct',
    note: 'Among the most fine-tuned small models. Gated: accept Google’s license on the Hub and enter an access token.',
    gated: true,
  },
  {
    repo: 'meta-llama/Llama-3.2-1B-Instruct',
    name: 'Llama 3.2 1B Instruct',
    note: 'Gated: accept Meta’s license on the Hub and enter an access token.',
    gated: true,
  },
  // From 1.5B parameters the frozen base loads at 4 bits by default (LoRA trains over it; exports fold into the
  // original weights).
  {
    repo: 'Qwen/Qwen2.5-1.5B-Instruct',
    name: 'Qwen2.5 1.5B Instruct',
    note: 'A useful assistant after tuning; trains over a 4-bit base.',
  },
  { repo: 'Qwen/Qwen3-1.7B', name: 'Qwen3 1.7B', note: 'Reasons step by step; trains over a 4-bit base.' },
  {
    repo: 'HuggingFaceTB/SmolLM2-1.7B-Instruct',
    name: 'SmolLM2 1.7B Instruct',
    note: 'Open data, English; trains over a 4-bit base.',
  },
  {
    repo: 'meta-llama/Llama-3.2-3B-Instruct',
    name: 'Llama 3.2 3B Instruct',
    note: 'Trains over a 4-bit base, in about 3 GB. Gated: accept Meta’s license on the Hub and enter an access token.',
    gated: true,
  },
  {
    repo: 'Qwen/Qwen2.5-3B-Instruct',
    name: 'Qwen2.5 3B Instruct',
    note: 'The largest here; trains over a 4-bit base.',
  },
];

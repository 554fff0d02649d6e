/**
 * The README.md a published repo gets when what is published has none (a .gguf file, a merged model folder): the
 * Hub's model-card front matter and a line saying what the files are, so the repo's page is not blank.
 */

export type PublishedKind = 'gguf' | 'model' | 'adapter';

export interface MinimalCard {
  kind: PublishedKind;
  /** The repo's name, as the card's title. */
  title: string;
  /** The files published, as the card lists them. */
  files: string[];
  /** The base model's Hub id, when known (an adapter's base_model_name_or_path). */
  baseModel?: string;
}

const WHAT: Record<PublishedKind, string> = {
  gguf: 'A model in GGUF format, for llama.cpp and the runtimes built on it.',
  model: 'A model in the Hugging Face layout (config.json and safetensors weights), loadable with transformers.',
  adapter: 'A LoRA adapter in the PEFT layout (adapter_config.json and adapter_model.safetensors).',
};

export function minimalModelCard(card: MinimalCard): string {
  const front = [
    ...(card.kind === 'adapter' ? ['library_name: peft'] : card.kind === 'model' ? ['library_name: transformers'] : []),
    ...(card.baseModel && /^[\w.-]+\/[\w.-]+$/.test(card.baseModel) ? [`base_model: ${card.baseModel}`] : []),
    'tags:',
    ...(card.kind === 'gguf' ? ['- gguf'] : []),
    '- hone',
  ];
  const files = card.files.map((file) => `- \`${file}\``).join('\n');
  return `---\n${front.join('\n')}\n---\n\n# ${card.title}\n\n${WHAT[card.kind]} Published with Hone.\n\n${files}\n`;
}

/**
 * An Ollama Modelfile for a GGUF file Hone wrote: FROM the file, the chat template in Ollama's Go template language
 * for the chat formats Hone's models use (ChatML: SmolLM2, Qwen; Llama 3's header tokens; Gemma's turns are left to the
 * template in the GGUF file, which Ollama recognizes), the tokens that end a turn as stop parameters, and the sampling defaults of generation_config.json; a LoRA GGUF as ADAPTER over its base's
 * GGUF. `ollama create NAME -f Modelfile`.
 */

export type ChatFormat = 'chatml' | 'llama3' | 'gemma';

/** Ollama's Go templates for each format: a system message, then every message, then the assistant's header. */
const TEMPLATES: Partial<Record<ChatFormat, string>> = {
  chatml: [
    '{{- if .System }}<|im_start|>system',
    '{{ .System }}<|im_end|>',
    '{{ end }}',
    '{{- range .Messages }}<|im_start|>{{ .Role }}',
    '{{ .Content }}<|im_end|>',
    '{{ end }}<|im_start|>assistant',
    '',
  ].join('\n'),
  llama3: [
    '{{- if .System }}<|start_header_id|>system<|end_header_id|>',
    '',
    '{{ .System }}<|eot_id|>',
    '{{- end }}',
    '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>',
    '',
    '{{ .Content }}<|eot_id|>',
    '{{- end }}<|start_header_id|>assistant<|end_header_id|>',
    '',
    '',
  ].join('\n'),
};

const TURN_END: Record<ChatFormat, string> = { chatml: '<|im_end|>', llama3: '<|eot_id|>', gemma: '<end_of_turn>' };

/** The chat format a Jinja chat template writes, by the tokens it puts around each message; null for another. */
export function chatFormat(template: string | null): ChatFormat | null {
  if (!template) return null;
  if (template.includes('<|im_start|>') && template.includes('<|im_end|>')) return 'chatml';
  if (template.includes('<|start_header_id|>') && template.includes('<|eot_id|>')) return 'llama3';
  if (template.includes('<start_of_turn>') && template.includes('<end_of_turn>')) return 'gemma';
  return null;
}

export interface ModelfileOptions {
  /** The GGUF file's name, beside the Modelfile. */
  gguf: string;
  /** A LoRA GGUF applied over `gguf` (Ollama's ADAPTER), beside it too. */
  adapter?: string;
  /** tokenizer_config.json's chat_template (or chat_template.jinja's text); null when the model has none. */
  chatTemplate: string | null;
  /** The tokens that end a turn or the text (eos and the like), as strings. */
  stopTokens: string[];
  /** generation_config.json's fields, when the model has the file. */
  generation?: Record<string, unknown>;
}

/** Sampling fields of generation_config.json and the Ollama parameters they set. */
const SAMPLING: [string, string][] = [
  ['temperature', 'temperature'],
  ['top_k', 'top_k'],
  ['top_p', 'top_p'],
  ['repetition_penalty', 'repeat_penalty'],
];

export function ollamaModelfile(options: ModelfileOptions): string {
  const format = chatFormat(options.chatTemplate);
  const lines = [`FROM ./${options.gguf}`, ...(options.adapter ? [`ADAPTER ./${options.adapter}`] : []), ''];
  const template = format && TEMPLATES[format];
  if (template) {
    lines.push(`TEMPLATE """${template}"""`, '');
  } else {
    lines.push(
      options.chatTemplate
        ? '# The chat template is in the GGUF file (tokenizer.chat_template); Ollama reads it from there.'
        : '# The model has no chat template: it continues text.',
      '',
    );
  }
  const stops = new Set(format ? [TURN_END[format], ...options.stopTokens] : options.stopTokens);
  // A stop string Ollama's quoting cannot carry (a quote, a backslash, a line break) is left out.
  for (const stop of stops) if (stop && !/["\\\n\r]/.test(stop)) lines.push(`PARAMETER stop "${stop}"`);
  const generation = options.generation ?? {};
  if (generation.do_sample !== false) {
    for (const [field, parameter] of SAMPLING) {
      const value = generation[field];
      if (typeof value === 'number' && Number.isFinite(value)) lines.push(`PARAMETER ${parameter} ${value}`);
    }
  } else {
    lines.push('PARAMETER temperature 0');
  }
  return `${lines.join('\n')}\n`;
}

import { readFile } from 'node:fs/promises';
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { GEMMA_CHAT_TEMPLATE } from '../../tests/helpers/gemma-tokenizer';
import { chatFormat, ollamaModelfile } from './ollama-modelfile';

const LLAMA3 =
  "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/** Ollama's Go template, run by hand on its three fields for the checks below (range, if, the two fields). */
function runGoTemplate(template: string, system: string, messages: { role: string; content: string }[]): string {
  // {{- and -}} trim the white space before and after them, as Go does.
  const body = template.replace(/\s*\{\{-\s*/g, '{{').replace(/\s*-\}\}\s*/g, '}}');
  const [, systemPart, rest] = /^\{\{if \.System \}\}([\s\S]*?)\{\{ ?end ?\}\}([\s\S]*)$/.exec(body) ?? [];
  const [, each, after] = /^\{\{range \.Messages \}\}([\s\S]*?)\{\{ ?end ?\}\}([\s\S]*)$/.exec(rest) ?? [];
  const fill = (text: string, fields: Record<string, string>) =>
    text.replace(/\{\{ \.(\w+) \}\}/g, (_, name: string) => fields[name]);
  return (
    (system ? fill(systemPart, { System: system }) : '') +
    messages.map((m) => fill(each, { Role: m.role, Content: m.content })).join('') +
    after
  );
}

describe('the Ollama Modelfile', () => {
  it('tells the chat formats of the models Hone trains by their templates', async () => {
    const tiny = JSON.parse(await readFile('public/models/hone-tiny/tokenizer_config.json', 'utf8'));
    expect(chatFormat(tiny.chat_template)).toBe('chatml');
    expect(chatFormat(LLAMA3)).toBe('llama3');
    expect(chatFormat(GEMMA_CHAT_TEMPLATE)).toBe('gemma');
    expect(chatFormat('{{ messages[0].content }}')).toBeNull();
    expect(chatFormat(null)).toBeNull();
  });

  it("writes the prompt the model's own chat template writes", async () => {
    const tiny = JSON.parse(await readFile('public/models/hone-tiny/tokenizer_config.json', 'utf8'));
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Capital of Peru?' },
      { role: 'assistant', content: 'Lima.' },
      { role: 'user', content: 'And of Chile?' },
    ];
    for (const [template, extra] of [
      [tiny.chat_template as string, {}],
      [LLAMA3, { bos_token: '' }],
    ] as const) {
      const format = chatFormat(template);
      const file = ollamaModelfile({ gguf: 'm.gguf', chatTemplate: template, stopTokens: [] });
      const go = /TEMPLATE """([\s\S]*?)"""/.exec(file)?.[1] ?? '';
      const expected = new Template(template).render({ messages, add_generation_prompt: true, ...extra });
      expect(runGoTemplate(go, 'Be brief.', messages.slice(1)), String(format)).toBe(expected);
    }
  });

  it('stops at the end of a turn, samples as generation_config.json says, and leaves out what it cannot quote', () => {
    const file = ollamaModelfile({
      gguf: 'tiny-q8_0.gguf',
      chatTemplate: '<|im_start|>…<|im_end|>',
      stopTokens: ['<|endoftext|>', '<|im_end|>', 'say "hi"'],
      generation: { temperature: 0.6, top_p: 0.9, repetition_penalty: 1.1, top_k: 'x' },
    });
    expect(file.split('\n').filter((l) => !l.startsWith('TEMPLATE') && l.startsWith('P'))).toEqual([
      'PARAMETER stop "<|im_end|>"',
      'PARAMETER stop "<|endoftext|>"',
      'PARAMETER temperature 0.6',
      'PARAMETER top_p 0.9',
      'PARAMETER repeat_penalty 1.1',
    ]);
    expect(file.startsWith('FROM ./tiny-q8_0.gguf\n')).toBe(true);
    const greedy = ollamaModelfile({
      gguf: 'm.gguf',
      chatTemplate: null,
      stopTokens: [],
      generation: { do_sample: false },
    });
    expect(greedy).toContain('# The model has no chat template');
    // Gemma's turns: Ollama reads the template from the GGUF file; the turn's end still stops it.
    const gemma = ollamaModelfile({ gguf: 'g.gguf', chatTemplate: GEMMA_CHAT_TEMPLATE, stopTokens: ['<eos>'] });
    expect(gemma).toContain('# The chat template is in the GGUF file');
    expect(gemma).not.toContain('TEMPLATE');
    expect(gemma.split('\n').filter((l) => l.startsWith('PARAMETER stop'))).toEqual([
      'PARAMETER stop "<end_of_turn>"',
      'PARAMETER stop "<eos>"',
    ]);
    expect(greedy).toContain('PARAMETER temperature 0');
    const lora = ollamaModelfile({
      gguf: 'base-f16.gguf',
      adapter: 'run-lora.gguf',
      chatTemplate: null,
      stopTokens: [],
    });
    expect(lora.startsWith('FROM ./base-f16.gguf\nADAPTER ./run-lora.gguf\n')).toBe(true);
  });
});

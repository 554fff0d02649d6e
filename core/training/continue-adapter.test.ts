import { describe, expect, it } from 'vitest';
import { parseAdapterConfig } from '../peft';
import { adapterShape } from './continue-adapter';

const config = (fields: Record<string, unknown>) =>
  parseAdapterConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['v_proj', 'q_proj'], ...fields });

describe('the shape of an adapter a run continues', () => {
  it('is the adapter\u2019s rank, alpha, rsLoRA and targets, in the layout\u2019s order', () => {
    expect(adapterShape(config({ use_rslora: true }), 'a')).toEqual({
      loraR: 8,
      loraAlpha: 16,
      rslora: true,
      targets: ['q_proj', 'v_proj'],
    });
    expect(adapterShape(config({ target_modules: 'all-linear' }), 'a').targets).toHaveLength(7);
  });

  it('is refused, with the reason, for adapters Hone does not train', () => {
    expect(() => adapterShape(config({ target_modules: '.*q_proj' }), 'x')).toThrow(
      'x: its target_modules is a regular expression',
    );
    expect(() => adapterShape(config({ layers_to_transform: [0, 2] }), 'x')).toThrow('x: it adapts only layers 0, 2');
    expect(() => adapterShape(config({ target_modules: ['q_proj', 'lm_head'] }), 'x')).toThrow(
      'x: it targets lm_head, which Hone does not train',
    );
  });
});

import { describe, expect, it } from 'vitest';
import { defaultSettings } from '../training/settings';
import { trlJsonl, trlRecords, trlScript } from './trl-job';

const user = { role: 'user' as const, content: 'Mend the nets.' };
const yes = { role: 'assistant' as const, content: 'Aye.' };
const no = { role: 'assistant' as const, content: 'No.' };

// The scripts were run with TRL 1.13 and transformers 5 on hone-tiny for every method (see the session notes);
// these tests pin what they hold.
describe('a job for TRL', () => {
  it('writes each record in the format its TRL trainer reads', () => {
    const o = { trainOnPrompt: false };
    expect(trlRecords({ kind: 'text', text: 'Call me Ishmael.' }, o)).toEqual([{ text: 'Call me Ishmael.' }]);
    expect(trlRecords({ kind: 'preference', prompt: [user], chosen: [yes], rejected: [no] }, o)).toEqual([
      { prompt: [user], chosen: [yes], rejected: [no] },
    ]);
    expect(trlRecords({ kind: 'prompt', prompt: [user], reference: 'Aye' }, o)).toEqual([
      { prompt: [user], reference: 'Aye' },
    ]);
    // Message weights are Hone's; TRL's records carry role and content only.
    expect(trlJsonl([{ kind: 'chat', messages: [user, { ...yes, weight: 1 }] }], o)).toBe(
      '{"prompt":[{"role":"user","content":"Mend the nets."}],"completion":[{"role":"assistant","content":"Aye."}]}\n',
    );
  });

  it('trains every answer of a conversation that carries loss, each once, as Hone does', () => {
    const system = { role: 'system' as const, content: 'Be brief.' };
    const skipped = { ...yes, content: 'Maybe.', weight: 0 as const };
    const chat = { kind: 'chat' as const, messages: [system, user, yes, user, skipped, user, no] };
    // Without prompt loss, a record per answer with weight, its conversation so far as the prompt.
    expect(trlRecords(chat, { trainOnPrompt: false })).toEqual([
      { prompt: [system, user], completion: [yes] },
      { prompt: [system, user, yes, user, { role: 'assistant', content: 'Maybe.' }, user], completion: [no] },
    ]);
    // With it, the whole conversation once (TRL puts loss on the prompt too).
    expect(trlRecords(chat, { trainOnPrompt: true })).toEqual([
      { prompt: [system, user, yes, user, { role: 'assistant', content: 'Maybe.' }, user], completion: [no] },
    ]);
  });

  it('carries the method, the LoRA settings and the hyperparameters into the script', () => {
    const s = { ...defaultSettings('sft', 135e6), loraR: 8, targets: ['q_proj' as const, 'v_proj' as const] };
    const script = trlScript(
      { ...s, maxSteps: 200, warmup: 10, schedule: 'constant' },
      { baseModel: 'HuggingFaceTB/SmolLM2-135M', hasValidation: true, trainOnPrompt: false },
    );
    expect(script).toContain('from trl import SFTConfig, SFTTrainer');
    expect(script).toContain('    r=8,\n    lora_alpha=32,');
    expect(script).toContain('target_modules=["q_proj","v_proj"]');
    expect(script).toContain('    max_steps=200,');
    expect(script).toContain('    warmup_steps=10,');
    expect(script).toContain('    lr_scheduler_type="constant_with_warmup",');
    expect(script).toContain('    completion_only_loss=True,');
    expect(script).toContain('    eval_dataset=data["validation"],');
    expect(script).toContain('    model="HuggingFaceTB/SmolLM2-135M",');
    const epochs = trlScript(s, { baseModel: 'm', hasValidation: false, trainOnPrompt: true });
    expect(epochs).toContain('    num_train_epochs=3,');
    expect(epochs).toContain('    completion_only_loss=False,');
    expect(epochs).not.toContain('validation');
  });

  it('writes each method its own trainer: DPO with beta, a reward model for sequence classification, GRPO groups', () => {
    const dpo = trlScript(defaultSettings('dpo', 1e6), { baseModel: 'm', hasValidation: false, trainOnPrompt: false });
    expect(dpo).toContain('from trl import DPOConfig, DPOTrainer');
    expect(dpo).toContain('    beta=0.1,');
    const rm = trlScript(defaultSettings('rm', 1e6), { baseModel: 'm', hasValidation: false, trainOnPrompt: false });
    expect(rm).toContain('AutoModelForSequenceClassification.from_pretrained("m", num_labels=1');
    expect(rm).toContain('task_type="SEQ_CLS"');
    const grpo = trlScript(
      { ...defaultSettings('grpo', 1e6), batchSize: 3, groupSize: 4 },
      { baseModel: 'm', hasValidation: false, trainOnPrompt: false, rewardRule: '(p, c) => c.length' },
    );
    expect(grpo).toContain('    per_device_train_batch_size=12,');
    expect(grpo).toContain('    num_generations=4,');
    expect(grpo).toContain('    beta=0.04,');
    expect(grpo).toContain('    # (p, c) => c.length');
    expect(grpo).toContain('    reward_funcs=reward,');
    const full = trlScript(
      { ...defaultSettings('cpt', 1e6), full: true },
      { baseModel: 'm', hasValidation: false, trainOnPrompt: false },
    );
    expect(full).not.toContain('peft_config');
    expect(full).toContain('    packing=True,');
  });
});

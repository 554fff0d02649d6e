import { describe, expect, it } from 'vitest';
import { spawnNodeRuleWorker } from '../../cli/rule-worker';
import { jsRewardSource } from '../../workers/engine/train/js-reward';

const sample = (completion: string, reference?: string) => ({
  prompt: 'Mend the nets.',
  completion,
  reference,
  ids: [],
});

describe('a reward rule in its own worker', () => {
  it('scores completions with the function the source evaluates to, reference included', async () => {
    const source = `// comments and a trailing semicolon are fine
      (prompt, completion, reference) => (completion.startsWith('Aye') ? 1 : 0) + (completion === reference ? 2 : 0) + prompt.length / 100;`;
    const rule = await jsRewardSource('aye.js', source, spawnNodeRuleWorker);
    const rewards = await rule.score([sample('Aye, captain!'), sample('No.'), sample('Aye', 'Aye')]);
    expect(rewards).toEqual([1.14, 0.14, 3.14].map((v) => expect.closeTo(v, 12)));
    rule.destroy();
  });

  it('refuses source that is not a function, or does not parse, naming the rule', async () => {
    await expect(jsRewardSource('num.js', '42', spawnNodeRuleWorker)).rejects.toThrow(
      /reward rule num.js: it must evaluate to a function .* not number/,
    );
    await expect(jsRewardSource('bad.js', '(p, c) => {', spawnNodeRuleWorker)).rejects.toThrow(/reward rule bad.js: /);
  });

  it('stops the run on a reward that is not a finite number, naming the completion', async () => {
    const rule = await jsRewardSource('nan.js', '(p, c) => c.length > 3 ? NaN : 1', spawnNodeRuleWorker);
    await expect(rule.score([sample('ok'), sample('too long')])).rejects.toThrow(
      /nan.js: it returned NaN .* for completion "too long" of prompt "Mend the nets."/,
    );
    rule.destroy();
  });

  it('ends a rule that runs past its time limit', async () => {
    const rule = await jsRewardSource('loop.js', '(p, c) => { for (;;) {} }', spawnNodeRuleWorker, 300);
    await expect(rule.score([sample('x')])).rejects.toThrow(/loop.js took more than 0.3 s on 1 completions/);
  });
});

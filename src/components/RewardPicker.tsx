import type { RewardChoice } from '../../workers/engine/api';
import { filesFromInput } from '../lib/picked-files';
import { CheckpointChoice } from './CheckpointChoice';
import { FolderOrZip } from './FolderOrZip';
import { input } from './ui';

/** A rule to start from: it rewards completions that hold the reference answer's words, and brevity. */
export const STARTER_RULE = `// A reward rule: (prompt, completion, reference) => a number, higher is better.
// It runs in a worker of its own, with a time limit; reference is the record's reference answer, if any.
(prompt, completion, reference) => {
  const words = (text) => text.toLowerCase().match(/[\\p{L}\\p{N}]+/gu) ?? [];
  const said = new Set(words(completion));
  const wanted = words(reference ?? '');
  const overlap = wanted.length > 0 ? wanted.filter((w) => said.has(w)).length / wanted.length : 0;
  return overlap + (completion.trim().length <= 80 ? 0.2 : 0);
};
`;

/**
 * Where a reward comes from: a rule written here, a reward model trained here, a reward model's PEFT folder, or
 * ONNX. Policy optimization's reward (Train) offers all; an evaluation's scorer (Compare) the models, or none.
 */
export function RewardPicker(props: {
  reward: RewardChoice | null;
  onChange: (reward: RewardChoice | null) => void;
  disabled: boolean;
  /** Offers the models only, and none of them (an evaluation's own rule is written apart). */
  modelsOnly?: boolean;
}) {
  const { reward, onChange, disabled, modelsOnly = false } = props;
  const rule = reward?.kind === 'rule' ? reward : null;
  return (
    <fieldset disabled={disabled} className="mt-3 space-y-2 text-sm" data-testid="reward-picker">
      <legend className="font-medium">{modelsOnly ? 'Reward model' : 'Reward'}</legend>
      {modelsOnly ? (
        <label className="flex items-center gap-2">
          <input type="radio" checked={reward === null} onChange={() => onChange(null)} />
          None
        </label>
      ) : (
        <label className="flex items-center gap-2">
          <input
            type="radio"
            checked={rule !== null}
            onChange={() => onChange({ kind: 'rule', name: 'rule.js', source: STARTER_RULE })}
          />
          A rule in JavaScript
        </label>
      )}
      {rule && (
        <textarea
          className={`${input} h-48 w-full font-mono text-xs`}
          aria-label="Reward rule"
          spellCheck={false}
          value={rule.source}
          onChange={(e) => onChange({ ...rule, source: e.target.value })}
        />
      )}
      <CheckpointChoice
        method="rm"
        label="A reward model trained here"
        chosen={reward?.kind === 'kept-run' ? reward : null}
        onChoose={(c) => onChange({ kind: 'kept-run', name: `the reward model run's step ${c.step}`, ...c })}
      />
      <FolderChoice
        kind="reward-model"
        reward={reward}
        onChange={onChange}
        label="A reward model"
        pick="pick a reward model's PEFT folder (trained with the reward model method)"
      />
      <FolderChoice
        kind="onnx"
        reward={reward}
        onChange={onChange}
        label="An ONNX reward model"
        pick="pick a folder with an ONNX sequence-classification model (and its tokenizer, if not the policy's)"
      />
    </fieldset>
  );
}

/** A reward read from a folder the person picks: its radio shows what was picked. */
function FolderChoice(props: {
  kind: 'reward-model' | 'onnx';
  reward: RewardChoice | null;
  onChange: (reward: RewardChoice) => void;
  label: string;
  pick: string;
}) {
  const chosen = props.reward?.kind === props.kind ? props.reward : null;
  return (
    <>
      <label className="flex items-center gap-2">
        <input type="radio" checked={chosen !== null} disabled={chosen === null} readOnly />
        {chosen ? `${props.label}: ${chosen.name} (${chosen.files.length} files)` : props.label}
      </label>
      <span className="flex flex-wrap gap-x-3">
        <FolderOrZip
          folderText={props.pick}
          folderLabel={`${props.label} folder`}
          zipLabel={`${props.label} zip`}
          onFiles={(list) => props.onChange({ kind: props.kind, ...filesFromInput(list) })}
        />
      </span>
    </>
  );
}

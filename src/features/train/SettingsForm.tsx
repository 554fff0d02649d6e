import { PROJECTIONS, type Projection } from '../../../core/model-config';
import {
  METHODS,
  type Method,
  SCHEDULES,
  type Schedule,
  type TrainSettings,
  withFull,
} from '../../../core/training/settings';
import { input } from '../../components/ui';

type NumberKey = {
  [K in keyof TrainSettings]: TrainSettings[K] extends number ? K : never;
}[keyof TrainSettings];

function NumberField(props: {
  label: string;
  field: NumberKey;
  settings: TrainSettings;
  onChange: (s: TrainSettings) => void;
  step?: string;
  disabled?: boolean;
}) {
  const { field, settings } = props;
  return (
    <label className="flex flex-col">
      <span className="text-slate-600 dark:text-slate-300">{props.label}</span>
      <input
        className={`${input} w-32`}
        type="number"
        step={props.step ?? 'any'}
        disabled={props.disabled}
        // Keyed by the value so a new default (another method) shows; typing edits it freely until blur.
        key={`${field}:${settings[field]}`}
        defaultValue={settings[field]}
        onBlur={(e) => {
          const n = e.target.value === '' ? Number.NaN : Number(e.target.value);
          if (n !== settings[field]) props.onChange({ ...settings, [field]: n });
        }}
      />
    </label>
  );
}

/** Every training setting, grouped as a person thinks of them; problems are checked by the caller. */
export function SettingsForm(props: {
  settings: TrainSettings;
  onChange: (s: TrainSettings) => void;
  onMethod: (m: Method) => void;
  /** The model's parameters, which set the default learning rate. */
  parameters: number;
  disabled: boolean;
}) {
  const { settings: s, onChange, disabled } = props;
  const field = (label: string, key: NumberKey, step?: string, off = false) => (
    <NumberField label={label} field={key} settings={s} onChange={onChange} step={step} disabled={disabled || off} />
  );
  return (
    <fieldset disabled={disabled} className="space-y-3 text-sm" data-testid="train-settings">
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">Method</span>
        <select
          className={`${input} max-w-md`}
          value={s.method}
          onChange={(e) => props.onMethod(e.target.value as Method)}
        >
          {(Object.keys(METHODS) as Method[]).map((m) => (
            <option key={m} value={m}>
              {METHODS[m]}
            </option>
          ))}
        </select>
      </label>
      <div className="flex flex-wrap gap-3">
        <label className="flex items-center gap-2">
          <input
            type="checkbox"
            checked={s.full}
            onChange={(e) => onChange(withFull(s, e.target.checked, props.parameters))}
          />
          Train every weight (tiny models only)
        </label>
        <label className="flex items-center gap-2">
          <input
            type="checkbox"
            checked={s.recompute}
            onChange={(e) => onChange({ ...s, recompute: e.target.checked })}
          />
          Recompute activations (gradient checkpointing: less memory, about a third slower)
        </label>
      </div>
      <div className="flex flex-wrap gap-3">
        {field('LoRA rank', 'loraR', '1', s.full)}
        {field('LoRA alpha', 'loraAlpha', 'any', s.full)}
        {field('LoRA dropout', 'loraDropout', 'any', s.full)}
        <label className="flex items-center gap-2">
          <input
            type="checkbox"
            checked={s.rslora}
            disabled={s.full}
            onChange={(e) => onChange({ ...s, rslora: e.target.checked })}
          />
          rsLoRA
        </label>
      </div>
      <fieldset className="flex flex-wrap gap-3">
        <legend className="mb-1 text-slate-600 dark:text-slate-300">LoRA target modules</legend>
        {PROJECTIONS.map((p: Projection) => (
          <label key={p} className="flex items-center gap-1 font-mono text-xs">
            <input
              type="checkbox"
              disabled={s.full}
              checked={s.targets.includes(p)}
              onChange={(e) =>
                onChange({
                  ...s,
                  targets: e.target.checked
                    ? PROJECTIONS.filter((t) => t === p || s.targets.includes(t))
                    : s.targets.filter((t) => t !== p),
                })
              }
            />
            {p}
          </label>
        ))}
      </fieldset>
      <div className="flex flex-wrap gap-3">
        {field('Learning rate', 'lr')}
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">Schedule</span>
          <select
            className={input}
            value={s.schedule}
            onChange={(e) => onChange({ ...s, schedule: e.target.value as Schedule })}
          >
            {SCHEDULES.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        {field('Warm-up (steps, or fraction)', 'warmup')}
        {field('Epochs', 'epochs', 'any', s.maxSteps !== null)}
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">Max steps (empty: by epochs)</span>
          <input
            className={`${input} w-32`}
            type="number"
            key={`maxSteps:${s.maxSteps}`}
            defaultValue={s.maxSteps ?? ''}
            onBlur={(e) => onChange({ ...s, maxSteps: e.target.value === '' ? null : Number(e.target.value) })}
          />
        </label>
      </div>
      <div className="flex flex-wrap gap-3">
        {field('Batch size', 'batchSize', '1')}
        {field('Gradient accumulation', 'gradAccum', '1')}
        {field('Sequence length', 'seqLen', '1')}
        {field('Weight decay', 'weightDecay')}
        {field('Gradient clipping', 'maxGradNorm')}
        {field('Seed', 'seed', '1')}
        {field('Evaluate every (steps)', 'evalEvery', '1')}
        {field('Checkpoint every (steps)', 'checkpointEvery', '1')}
        {field('Checkpoint every (minutes)', 'checkpointMinutes')}
        {s.method === 'dpo' && field('DPO beta', 'dpoBeta')}
      </div>
      {s.method === 'grpo' && (
        <div className="flex flex-wrap gap-3">
          {field('Completions per prompt', 'groupSize', '1')}
          {field('Longest completion (tokens)', 'maxCompletion', '1')}
          {field('Sampling temperature', 'temperature')}
          {field('KL penalty (beta)', 'klBeta')}
        </div>
      )}
    </fieldset>
  );
}

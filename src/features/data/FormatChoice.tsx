import { useState } from 'react';
import { DATASET_FORMATS, type DatasetFormat, type FieldMapping, FORMAT_SPECS } from '../../../core/dataset/formats';
import type { DatasetSummary } from '../../../workers/data/api';
import { button, card, input } from '../../components/ui';
import { useDataset } from '../../stores/dataset';

/**
 * The detected format and which column plays each field, both changeable: a dataset with unusual column names, or
 * one Hone guessed wrong, is read again under the person's choice.
 */
export function FormatChoice({ columns, summary }: { columns: string[]; summary?: DatasetSummary }) {
  const setChoice = useDataset((s) => s.setChoice);
  const [format, setFormat] = useState<DatasetFormat>(summary?.format ?? 'prompt_completion');
  const [mapping, setMapping] = useState<FieldMapping>(summary?.mapping ?? {});
  const fields = FORMAT_SPECS[format].fields;
  const canMap = columns.length > 0;
  return (
    <form
      className={card}
      data-testid="format-choice"
      onSubmit={(e) => {
        e.preventDefault();
        // Every field is named, an empty choice included, so nothing detected for another format leaks in.
        const chosen = Object.fromEntries(fields.map((f) => [f.name, mapping[f.name] ?? '']));
        setChoice({ format, mapping: canMap ? chosen : undefined });
      }}
    >
      <h2 className="font-semibold">Format</h2>
      <div className="mt-2 flex flex-wrap items-end gap-3 text-sm">
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">
            Shape of the records{summary?.detected && ' (detected)'}
          </span>
          <select
            className={input}
            value={format}
            onChange={(e) => {
              const next = e.target.value as DatasetFormat;
              setFormat(next);
              // Start the new format's fields from columns with their usual names.
              const guess: FieldMapping = {};
              for (const f of FORMAT_SPECS[next].fields) {
                const column = f.aliases.find((a) => columns.includes(a));
                if (column) guess[f.name] = column;
              }
              setMapping(guess);
            }}
          >
            {DATASET_FORMATS.map((f) => (
              <option key={f} value={f}>
                {FORMAT_SPECS[f].label}
              </option>
            ))}
          </select>
        </label>
        {canMap &&
          fields.map((f) => (
            <label key={f.name} className="flex flex-col">
              <span className="text-slate-600 dark:text-slate-300">
                {f.name}
                {!f.required && ' (optional)'}
              </span>
              <select
                className={input}
                value={mapping[f.name] ?? ''}
                onChange={(e) => setMapping({ ...mapping, [f.name]: e.target.value })}
              >
                <option value="">{f.required ? 'choose a column' : 'none'}</option>
                {columns.map((c) => (
                  <option key={c} value={c}>
                    {c}
                  </option>
                ))}
              </select>
            </label>
          ))}
        <button type="submit" className={`${button} bg-slate-800 text-white dark:bg-slate-200 dark:text-slate-900`}>
          Read again as this
        </button>
      </div>
    </form>
  );
}

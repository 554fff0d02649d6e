import { useMutation } from '@tanstack/react-query';
import { pickedFilesReader } from '../../../core/export/unzip-folder';
import { parseAdapterConfig } from '../../../core/peft';
import { adapterShape } from '../../../core/training/continue-adapter';
import { CONTINUED_WARMUP } from '../../../core/training/schedule';
import type { TrainSettings } from '../../../core/training/settings';
import { FolderOrZip } from '../../components/FolderOrZip';
import { ErrorMessage } from '../../components/ui';
import { filesFromInput } from '../../lib/picked-files';
import type { PickedAdapter } from '../../stores/training';

/**
 * Where the run's adapter starts: fresh (PEFT's initialization), or an adapter made before (exported from Hone,
 * trained with TRL), whose LoRA shape the settings then take over.
 */
export function StartFrom(props: {
  picked: PickedAdapter | null;
  settings: TrainSettings;
  onPick: (picked: PickedAdapter | null, settings: TrainSettings) => void;
  disabled: boolean;
}) {
  const { picked, settings, onPick, disabled } = props;
  const read = useMutation({
    mutationFn: async (list: FileList) => {
      const { name, files } = filesFromInput(list);
      // Only the config is read (a zip's weights are not inflated until the run starts).
      const configFile = await (await pickedFilesReader(files))('adapter_config.json');
      if (!configFile)
        throw new Error(`${name}: no adapter_config.json (a PEFT adapter folder, or its zip, is needed)`);
      const config = parseAdapterConfig(JSON.parse(await configFile.text()), `${name}/adapter_config.json`);
      return { name, files, shape: adapterShape(config, name) };
    },
    onSuccess: (picked) => onPick(picked, { ...settings, ...picked.shape }),
  });
  return (
    <fieldset disabled={disabled} className="mt-3 space-y-2 text-sm" data-testid="start-from">
      <legend className="font-medium">Start from</legend>
      <div className="flex flex-wrap items-center gap-4">
        <label className="flex items-center gap-2">
          <input type="radio" checked={picked === null} onChange={() => onPick(null, settings)} />A new adapter
        </label>
        <label className="flex items-center gap-2">
          <input type="radio" checked={picked !== null} disabled={picked === null} readOnly />
          {picked ? `The adapter ${picked.name}, continued in its shape` : 'An adapter made before'}
        </label>
        <FolderOrZip
          folderText="pick its folder"
          folderLabel="continue an adapter folder"
          zipLabel="continue a zipped adapter"
          onFiles={(list) => read.mutate(list)}
        />
      </div>
      {picked && (
        <p className="text-slate-600 dark:text-slate-300" data-testid="continue-note">
          Its weights start where they were; its optimizer starts fresh, so the learning rate warms up over at least{' '}
          {CONTINUED_WARMUP} steps (or a tenth of the run) to keep what it learned.
        </p>
      )}
      {read.isError && <ErrorMessage error={read.error} />}
    </fieldset>
  );
}

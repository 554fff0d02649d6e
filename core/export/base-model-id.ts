/**
 * The base model's name as an adapter's `base_model_name_or_path` should carry it: the Hub id for a Hub model
 * (`hub:ORG/NAME@REV` → `ORG/NAME`), and for a folder its name, never a path on this machine.
 */
export function baseModelId(model: string): string {
  if (model.startsWith('hub:')) return model.slice(4).replace(/@.*$/, '');
  const parts = model.split(/[\\/]/).filter((part) => part !== '' && part !== '.');
  return parts.at(-1) ?? model;
}

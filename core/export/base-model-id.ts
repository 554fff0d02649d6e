/**
 * The base model's name as an adapter's `base_model_name_or_path` should carry it: the Hub id for a Hub model
 * (`hub:ORG/NAME@REV` → `ORG/NAME`), and for a folder its name, never a path on this machine.
 */
export function baseModelId(model: string): string {
  if (model.startsWith('hub:')) return model.slice(4).replace(/@.*$/, '');
  const parts = model.split(/[\\/]/).filter((part) => part !== '' && part !== '.');
  return parts.at(-1) ?? model;
}

/** What an export of a run is named: `SmolLM2-135M-sft-step200`, from the model, the method and what it holds. */
export function exportName(model: string, method: string, what: string): string {
  return `${baseModelId(model).split('/').at(-1)}-${method}-${what}`;
}

/**
 * A small byte-level BPE tokenizer in the Hugging Face format (a handful of hand-picked merges, ChatML special
 * tokens, a chat template): the tokenizer files a model folder holds, for tests of the loader and the UI.
 */
import { CHAT_TEMPLATE, tokenizerFiles } from '../../scripts/tiny-model/bpe';

export { CHAT_TEMPLATE };

const MERGES: [string, string][] = [
  ['h', 'e'],
  ['l', 'l'],
  ['Ġ', 't'],
  ['Ġt', 'he'],
  ['he', 'll'],
  ['hell', 'o'],
];

export function tinyTokenizerFiles(): Record<string, string> {
  return tokenizerFiles(MERGES);
}

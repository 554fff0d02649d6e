/** `npm run examples`: writes public/examples/ from scripts/tiny-model/examples.ts. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exampleFiles } from './tiny-model/examples';

const dir = 'public/examples';
await mkdir(dir, { recursive: true });
for (const [name, text] of Object.entries(exampleFiles())) await writeFile(join(dir, name), text);
process.stdout.write(`wrote ${Object.keys(exampleFiles()).length} files to ${dir}\n`);

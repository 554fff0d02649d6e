import { Zip, ZipPassThrough } from 'fflate';

/** What a zip entry holds: bytes, a Blob (read as a stream), or pieces made as the zip is written. */
export type ZipContent = Blob | Uint8Array | AsyncIterable<Uint8Array>;

/** Zip without ZIP64: no entry, and no archive, may reach 4 GiB. */
export const ZIP_LIMIT_BYTES = 2 ** 32 - 1;

async function* pieces(content: ZipContent): AsyncGenerator<Uint8Array> {
  if (content instanceof Uint8Array) yield content;
  else if (content instanceof Blob) {
    const reader = content.stream().getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) yield next.value;
  } else yield* content;
}

/**
 * Files as a zip whose entries sit in one folder, written to `sink` piece by piece as each is read (stored, not
 * deflated: weights barely compress), so a model's zip never needs a second copy in memory.
 */
export async function writeZip(
  folder: string,
  files: Map<string, ZipContent>,
  sink: (chunk: Uint8Array) => Promise<void> | void,
): Promise<void> {
  const pending: Uint8Array[] = [];
  let failure: Error | null = null;
  const zip = new Zip((error, chunk) => {
    if (error) failure = error;
    else pending.push(chunk);
  });
  const flush = async () => {
    if (failure) throw failure;
    for (const chunk of pending.splice(0)) await sink(chunk);
  };
  for (const [name, content] of files) {
    const entry = new ZipPassThrough(`${folder}/${name}`);
    zip.add(entry);
    for await (const piece of pieces(content)) {
      entry.push(piece);
      await flush();
    }
    entry.push(new Uint8Array(0), true);
    await flush();
  }
  zip.end();
  await flush();
}

/** Files as a zip in memory (see writeZip). */
export async function zipFolder(folder: string, files: Map<string, ZipContent>): Promise<Blob> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  await writeZip(folder, files, (chunk) => {
    chunks.push(chunk as Uint8Array<ArrayBuffer>);
  });
  return new Blob(chunks, { type: 'application/zip' });
}

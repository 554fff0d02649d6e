import { Zip, ZipPassThrough } from 'fflate';

/**
 * Files as a zip whose entries sit in one folder, built a file at a time into a Blob (stored, not deflated:
 * weights barely compress, and a model's zip must not need a second copy in one buffer).
 */
export async function zipFolder(folder: string, files: Map<string, Blob | Uint8Array>): Promise<Blob> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let failure: Error | null = null;
  const zip = new Zip((error, chunk) => {
    if (error) failure = error;
    else chunks.push(chunk as Uint8Array<ArrayBuffer>);
  });
  for (const [name, content] of files) {
    const entry = new ZipPassThrough(`${folder}/${name}`);
    zip.add(entry);
    entry.push(content instanceof Blob ? new Uint8Array(await content.arrayBuffer()) : content, true);
  }
  zip.end();
  if (failure) throw failure;
  return new Blob(chunks, { type: 'application/zip' });
}

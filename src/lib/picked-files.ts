/** Files a person picked or dropped, with their paths inside the chosen folder. */
export interface PickedFiles {
  name: string;
  files: { path: string; file: File }[];
}

/** From `<input type="file" webkitdirectory>`: paths come as folder/relative/path. */
export function filesFromInput(list: FileList): PickedFiles {
  const files = [...list].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
  const name = files[0]?.path.split('/')[0] ?? 'files';
  return { name, files };
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry: FileSystemEntry, out: PickedFiles['files']): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ path: entry.fullPath.replace(/^\//, ''), file });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns at most 100 entries per call, so keep reading until it returns none.
  for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
    for (const child of batch) await walk(child, out);
  }
}

/** From a drop: a folder (walked) or loose files. */
export async function filesFromDrop(data: DataTransfer): Promise<PickedFiles> {
  const entries = [...data.items].map((item) => item.webkitGetAsEntry()).filter((e): e is FileSystemEntry => !!e);
  const files: PickedFiles['files'] = [];
  for (const entry of entries) await walk(entry, files);
  if (files.length === 0) for (const file of data.files) files.push({ path: file.name, file });
  const name = entries.length === 1 && entries[0].isDirectory ? entries[0].name : 'dropped files';
  return { name, files };
}

/**
 * Two links that open the file picker: one for a folder (every file in it), one for its .zip. Either hands the
 * picked files on; `folderLabel` and `zipLabel` name the inputs for assistive technology (the link text where none).
 */
export function FolderOrZip(props: {
  folderText: string;
  zipText?: string;
  folderLabel?: string;
  zipLabel: string;
  onFiles: (list: FileList) => void;
}) {
  const pick = (list: FileList | null) => {
    if (list && list.length > 0) props.onFiles(list);
  };
  const link = 'cursor-pointer font-medium text-indigo-700 underline dark:text-indigo-300';
  return (
    <>
      <label className={link}>
        {props.folderText}
        <input
          type="file"
          className="sr-only"
          aria-label={props.folderLabel}
          // @ts-expect-error: webkitdirectory is not in React's types, but every current browser supports it.
          webkitdirectory=""
          multiple
          onChange={(e) => pick(e.target.files)}
        />
      </label>
      <label className={link}>
        {props.zipText ?? 'or its .zip'}
        <input
          type="file"
          className="sr-only"
          accept=".zip,application/zip"
          aria-label={props.zipLabel}
          onChange={(e) => pick(e.target.files)}
        />
      </label>
    </>
  );
}

/** What the page may ask of the data worker (exposed with comlink), and the types its answers carry. */
export type { DataApi } from '../data.worker';
export type { DataProgress, DatasetSummary, PreviewRecord, TokenSettings } from './data-session';

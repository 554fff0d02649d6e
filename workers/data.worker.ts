/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { DataSession } from './data/data-session';
import { cacheStorageCache } from './storage/cache-storage';

/** The data worker: datasets are read, checked and tokenized here, never on the page's main thread. */
const session = new DataSession(typeof caches === 'undefined' ? null : cacheStorageCache());

const api = {
  load: session.load.bind(session),
  tokenize: session.tokenize.bind(session),
  issuesCsv: session.issuesCsv.bind(session),
  validationPrompts: session.validationPrompts.bind(session),
  heldOutExamples: session.heldOutExamples.bind(session),
  examplesFrom: session.examplesFrom.bind(session),
  jobData: session.jobData.bind(session),
};

export type DataApi = typeof api;

Comlink.expose(api);

/**
 * Publishing files to a Hub model repo with @huggingface/hub, for the studio and `hone push` alike: the token is
 * checked (whoami), the repo created when it does not exist (private or public as asked; one that exists is
 * committed to, whoever made it), large files uploaded by LFS (sha256-addressed, so a retry after a cut sends only
 * what the Hub does not have yet) and every file committed in one commit. Every failure is a PublishError whose
 * message says what happened and what to do, in one line, in the words of core/hub-errors.ts.
 */
import {
  type CommitOperation,
  type CommitOutput,
  commitIter,
  createRepo,
  HubApiError,
  repoExists,
  whoAmI,
} from '@huggingface/hub';
import { DEFAULT_HUB_URL } from './hub';

export interface PublishOptions {
  /** `org/name`: a user's or an organization's namespace and the repo's name; a name alone is the token's user's. */
  repo: string;
  /** A repo this call creates is private (an existing repo keeps its visibility). */
  private?: boolean;
  /** An access token with write permission (`hf_...`). */
  token?: string;
  /** The Hub, a mirror or a local server; the Hugging Face Hub when left out. */
  hubUrl?: string;
  /** Path in the repo → content. */
  files: Map<string, Blob>;
  commitTitle?: string;
  onProgress?: (progress: PublishProgress) => void;
  /** Injected for tests and for environments without a global fetch. */
  fetch?: typeof fetch;
}

export interface PublishProgress {
  /** The token and the repo checked, large files hashed, then uploaded, then every file committed. */
  stage: 'checking' | 'hashing' | 'uploading' | 'committing';
  /** The file a hashing or uploading event is about. */
  file?: string;
  /** How far along that file is, 0 to 1. */
  fraction?: number;
  /** Files whose bytes are on the Hub (large files uploaded, or there from before), of all the files. */
  uploaded: number;
  total: number;
}

export interface PublishResult {
  /** `{hubUrl}/{repo}`: the repo's page. */
  url: string;
  /** The commit's id. */
  commit: string;
  /** This call created the repo. */
  created: boolean;
}

/**
 * Basic LFS transfers (one PUT per large file), not Xet, which @huggingface/hub 2.17 asks for by default: the Hub
 * still takes them, a local stand-in or a mirror can speak them, and they are the path the tests cover.
 */
const USE_XET = false;

export type PublishProblem =
  | { kind: 'no-token' }
  /** Not a Hub token at all (they begin with hf_). */
  | { kind: 'bad-token' }
  /** 401: mistyped, expired or revoked. */
  | { kind: 'token-rejected'; baseUrl: string }
  | { kind: 'read-only'; repo: string }
  /** 403: a namespace or repo the token's user may not write to. */
  | { kind: 'not-yours'; repo: string }
  | { kind: 'cut'; repo: string; uploaded: number; total: number }
  | { kind: 'unreachable'; baseUrl: string }
  | { kind: 'bad-id'; repo: string }
  | { kind: 'status'; repo: string; status: number; baseUrl: string; detail: string | null };

export type PublishProblemKind = PublishProblem['kind'];

const WHERE_TOKENS = 'Hub settings in the studio, HF_TOKEN for hone';

/** The one message for each problem: what happened, then what to do. */
export function publishProblemMessage(problem: PublishProblem): string {
  switch (problem.kind) {
    case 'no-token':
      return `publishing needs an access token with write permission: ${WHERE_TOKENS}`;
    case 'bad-token':
      return `the access token is not a Hub token (they begin with hf_): set one with write permission (${WHERE_TOKENS})`;
    case 'token-rejected':
      return (
        `the Hub at ${problem.baseUrl} rejected the access token (HTTP 401): it is mistyped, expired or revoked; ` +
        `set one with write permission (${WHERE_TOKENS})`
      );
    case 'read-only':
      return `the access token is read-only: publishing to ${problem.repo} needs one with write permission (${WHERE_TOKENS})`;
    case 'not-yours':
      return (
        `${problem.repo} belongs to someone else, or the token may not write to it (HTTP 403): publish under your ` +
        'own name or an organization the token can write to'
      );
    case 'cut':
      return (
        `the upload to ${problem.repo} was cut off after ${problem.uploaded} of ${problem.total} files: run it again ` +
        'to finish; files already uploaded are not sent twice'
      );
    case 'unreachable':
      return (
        `the Hub at ${problem.baseUrl} can't be reached (offline?): try again, or check the Hub's address ` +
        '(Hub settings in the studio, HONE_HUB_URL for hone)'
      );
    case 'bad-id':
      return `"${problem.repo}" is not a Hub repo id to publish to (expected org/name, or a name)`;
    case 'status':
      return (
        `the Hub at ${problem.baseUrl} answered HTTP ${problem.status} publishing to ${problem.repo}` +
        `${problem.detail ? ` (${problem.detail})` : ''}: try again later`
      );
  }
}

/** Error names by kind: a name survives the trip from a worker to the page, where fields do not. */
const NAMES: Record<PublishProblemKind, string> = {
  'no-token': 'HubPublishNoTokenError',
  'bad-token': 'HubPublishBadTokenError',
  'token-rejected': 'HubPublishTokenRejectedError',
  'read-only': 'HubPublishReadOnlyError',
  'not-yours': 'HubPublishNotYoursError',
  cut: 'HubPublishCutError',
  unreachable: 'HubPublishUnreachableError',
  'bad-id': 'HubPublishRepoIdError',
  status: 'HubPublishStatusError',
};

export class PublishError extends Error {
  readonly kind: PublishProblemKind;
  constructor(readonly problem: PublishProblem) {
    super(publishProblemMessage(problem));
    this.kind = problem.kind;
    this.name = NAMES[problem.kind];
  }
}

/** The kind of a publishing error, here or after it crossed from a worker (by its name); null for any other. */
export function publishErrorKind(error: unknown): PublishProblemKind | null {
  if (error instanceof PublishError) return error.kind;
  const name = (error as { name?: unknown } | null)?.name;
  const found = Object.entries(NAMES).find(([, n]) => n === name);
  return found ? (found[0] as PublishProblemKind) : null;
}

/** A request that got no answer (refused, reset, DNS, offline), told apart from the library's own errors. */
class NoAnswer extends Error {}

function answeringFetch(base: typeof fetch): typeof fetch {
  return async (input, init) => {
    try {
      return await base(input, init);
    } catch (error) {
      // An abort is the library cancelling its other uploads after one failed: that one's error is the one thrown.
      if (init?.signal?.aborted) throw error;
      throw new NoAnswer('no answer', { cause: error });
    }
  };
}

/**
 * Publishes the files to the repo in one commit, creating the repo first when it does not exist; the repo's URL
 * and the commit. Run again after a failure, it commits to the repo it created, and large files already uploaded
 * are not sent again.
 */
export async function publishToHub(options: PublishOptions): Promise<PublishResult> {
  const { repo: requested, token } = options;
  let repo = requested;
  const baseUrl = (options.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  if (!/^([\w.-]+\/)?[\w.-]+$/.test(requested) || requested.includes('..')) {
    throw new PublishError({ kind: 'bad-id', repo: requested });
  }
  if (!token) throw new PublishError({ kind: 'no-token' });
  if (!token.startsWith('hf_')) throw new PublishError({ kind: 'bad-token' });
  const total = options.files.size;
  if (total === 0) throw new Error(`nothing to publish to ${repo}: no files`);
  const onHub = new Set<string>();
  const report = (stage: PublishProgress['stage'], file?: string, fraction?: number) =>
    options.onProgress?.({ stage, file, fraction, uploaded: onHub.size, total });
  const common = { hubUrl: baseUrl, accessToken: token, fetch: answeringFetch(options.fetch ?? globalThis.fetch) };
  let answered = false;
  try {
    report('checking');
    const me = await whoAmI(common);
    answered = true;
    if (!repo.includes('/')) repo = `${me.name}/${repo}`;
    if (me.auth.accessToken?.role === 'read') throw new PublishError({ kind: 'read-only', repo });
    let created = false;
    if (!(await repoExists({ ...common, repo }))) {
      try {
        await createRepo({ ...common, repo, visibility: options.private ? 'private' : 'public' });
        created = true;
      } catch (error) {
        // Made meanwhile (another tab, an earlier try the Hub finished after the connection dropped): commit to it.
        if (!(error instanceof HubApiError && error.statusCode === 409)) throw error;
      }
    }
    const operations: CommitOperation[] = [...options.files].map(([path, content]) => ({
      operation: 'addOrUpdate',
      path,
      content,
    }));
    const title = options.commitTitle ?? `Upload ${total} file${total === 1 ? '' : 's'} with Hone`;
    const commit = commitIter({ ...common, repo, operations, title, useXet: USE_XET });
    let output: CommitOutput | undefined;
    for (let next = await commit.next(); ; next = await commit.next()) {
      if (next.done) {
        output = next.value;
        break;
      }
      const event = next.value;
      if (event.event === 'phase') {
        if (event.phase === 'committing') report('committing');
      } else if (event.state === 'hashing') report('hashing', event.path, event.progress);
      else if (event.state === 'uploading') {
        if (event.progress >= 1) onHub.add(event.path);
        report('uploading', event.path, event.progress);
      }
    }
    if (!output) throw new Error(`the Hub at ${baseUrl} did not say which commit it made in ${repo}`);
    return { url: `${baseUrl}/${repo}`, commit: output.commit.oid, created };
  } catch (error) {
    throw explain(error, { repo, baseUrl, answered, uploaded: onHub.size, total });
  }
}

function explain(
  error: unknown,
  at: { repo: string; baseUrl: string; answered: boolean; uploaded: number; total: number },
): unknown {
  const { repo, baseUrl } = at;
  if (error instanceof PublishError) return error;
  if (error instanceof NoAnswer) {
    return new PublishError(
      at.answered ? { kind: 'cut', repo, uploaded: at.uploaded, total: at.total } : { kind: 'unreachable', baseUrl },
    );
  }
  if (error instanceof HubApiError) {
    if (error.statusCode === 401) return new PublishError({ kind: 'token-rejected', baseUrl });
    if (error.statusCode === 403) return new PublishError({ kind: 'not-yours', repo });
    const said = (error.data as { error?: unknown } | undefined)?.error;
    const detail = typeof said === 'string' ? said.split('\n')[0].slice(0, 200) : null;
    return new PublishError({ kind: 'status', repo, status: error.statusCode, baseUrl, detail });
  }
  return error;
}

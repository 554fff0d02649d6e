/**
 * What went wrong talking to the Hub, and what to do about it, in the same words in the studio and in `hone`: one
 * function builds every message. The Hub answers a missing repo, revision and file all with 404 (a missing or
 * private repo with 401 when no token is sent), and tells them apart in its `X-Error-Code` header.
 */

export type HubProblem =
  /** No answer at all: fetch threw (offline, DNS, refused, blocked). */
  | { kind: 'unreachable'; baseUrl: string }
  /** 401 / 403, or `X-Error-Code: GatedRepo`: a gated or private repo. */
  | { kind: 'denied'; repo: string; status: number }
  /** `X-Error-Code: RepoNotFound` (401 without a token: missing, or private). */
  | { kind: 'no-repo'; repo: string; status: number }
  /** `X-Error-Code: RevisionNotFound`. */
  | { kind: 'no-revision'; repo: string; revision: string }
  /** A file a model cannot do without (config.json) is not in the repo; `sure` when the Hub said EntryNotFound. */
  | { kind: 'no-file'; repo: string; file: string; sure: boolean; baseUrl: string }
  /** Any other HTTP status. */
  | { kind: 'status'; repo: string; file: string; status: number; baseUrl: string }
  /** The id is not an ORG/NAME a Hub URL can hold. */
  | { kind: 'bad-id'; repo: string }
  /** A transfer that failed in a way with its own words (cut short after retries, cancelled, no body). */
  | { kind: 'transfer'; repo: string; file: string; detail: string };

export type HubProblemKind = HubProblem['kind'];

/** The values of the Hub's `X-Error-Code` response header this client tells apart. */
export const HUB_ERROR_CODES = {
  repo: 'RepoNotFound',
  revision: 'RevisionNotFound',
  entry: 'EntryNotFound',
  gated: 'GatedRepo',
} as const;

/** The one message for each problem: what happened, then what to do. */
export function hubProblemMessage(problem: HubProblem): string {
  switch (problem.kind) {
    case 'unreachable':
      return (
        `the Hub at ${problem.baseUrl} can't be reached (offline?): try again, set a mirror in Hub settings ` +
        '(HONE_HUB_URL for hone), or use the offline demo model (hone-tiny)'
      );
    case 'denied':
      return (
        `${problem.repo} is gated or private (HTTP ${problem.status}): accept the license on the Hub and set an ` +
        'access token in Hub settings (HF_TOKEN for hone)'
      );
    case 'no-repo':
      return problem.status === 401
        ? `no repo ${problem.repo} on the Hub: check the id (a private repo needs an access token: HF_TOKEN for hone)`
        : `no repo ${problem.repo} on the Hub: check the id`;
    case 'no-revision':
      return `no revision ${problem.revision} of ${problem.repo} on the Hub: check the name after @`;
    case 'no-file':
      return problem.sure
        ? `the repo ${problem.repo} has no ${problem.file}: is it a model repo?`
        : `no ${problem.file} for ${problem.repo} at ${problem.baseUrl}: check the id, and that it is a model repo`;
    case 'status':
      return `the Hub at ${problem.baseUrl} answered HTTP ${problem.status} for ${problem.repo}/${problem.file}: try again later`;
    case 'bad-id':
      return `"${problem.repo}" is not a Hub repo id (expected org/name)`;
    case 'transfer':
      return `${problem.repo}/${problem.file}: ${problem.detail}`;
  }
}

/** Error names by kind: a name survives the trip from the engine worker to the page, where fields do not. */
const NAMES: Record<HubProblemKind, string> = {
  unreachable: 'HubUnreachableError',
  denied: 'HubAccessError',
  'no-repo': 'HubRepoNotFoundError',
  'no-revision': 'HubRevisionNotFoundError',
  'no-file': 'HubFileNotFoundError',
  status: 'HubStatusError',
  'bad-id': 'HubRepoIdError',
  transfer: 'HubTransferError',
};

export class HubError extends Error {
  readonly kind: HubProblemKind;
  constructor(
    readonly problem: HubProblem,
    /** HTTP status, or 0 when the request failed before one arrived. */
    readonly status: number,
  ) {
    super(hubProblemMessage(problem));
    this.kind = problem.kind;
    this.name = NAMES[problem.kind];
  }
}

/** The kind of a Hub error, here or after it crossed from a worker (by its name); null for any other error. */
export function hubErrorKind(error: unknown): HubProblemKind | null {
  if (error instanceof HubError) return error.kind;
  const name = (error as { name?: unknown } | null)?.name;
  const found = Object.entries(NAMES).find(([, n]) => n === name);
  return found ? (found[0] as HubProblemKind) : null;
}

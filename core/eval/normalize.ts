/**
 * Answer normalization for exact match and contains: SQuAD's `normalize_answer` (lower-case, punctuation removed,
 * articles removed, white space collapsed), made unicode-aware.
 */

/**
 * \p{P} ∪ the ASCII symbols of Python's `string.punctuation` ($+<=>^`|~).
 * Those are \p{S} in Unicode but SQuAD strips them, so ASCII text normalizes exactly as SQuAD's script does.
 */
const PUNCTUATION = /[\p{P}$+<=>^`|~]/gu;

/** a | an | the between non-word characters, with Python 3's unicode \w ([\p{L}\p{N}_]) as word characters. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * NFKC → lower-case → delete punctuation → articles → ' ' → white space collapsed to single spaces, trimmed.
 * NFKC first so that full-width letters, ligatures and compatibility spaces compare equal to their plain forms.
 */
export function normalizeAnswer(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(PUNCTUATION, '')
    .replace(ARTICLES, ' ')
    .split(/\s+/u)
    .filter((word) => word !== '')
    .join(' ');
}

/** Scripts written without spaces between words: a match inside them needs no word boundary. */
const UNSPACED =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;

/**
 * Does `needle` occur in `haystack` (both normalized) with a word boundary on each side: an end of the string, a
 * space, or an unspaced script's character on either side of the boundary.
 * So "5" is not in "150" nor "cat" in "category", while 北京 is still in 首都是北京.
 */
export function containsWords(haystack: string, needle: string): boolean {
  if (needle === '') return false;
  const first = String.fromCodePoint(needle.codePointAt(0) ?? 0);
  const last = lastCodePoint(needle);
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) {
    const before = at === 0 ? '' : lastCodePoint(haystack.slice(0, at));
    const end = at + needle.length;
    const after = end === haystack.length ? '' : String.fromCodePoint(haystack.codePointAt(end) ?? 0);
    if (isBoundary(before, first) && isBoundary(after, last)) return true;
  }
  return false;
}

/** outside = '' (string end) | ' ' | either side in an unspaced script. */
function isBoundary(outside: string, inside: string): boolean {
  return outside === '' || outside === ' ' || UNSPACED.test(outside) || UNSPACED.test(inside);
}

function lastCodePoint(text: string): string {
  const chars = Array.from(text.slice(-2));
  return chars[chars.length - 1] ?? '';
}

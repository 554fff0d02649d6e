import { describe, expect, it } from 'vitest';
import { type ChrfOptions, charNgrams, chrF } from './chrf';

type Vector = [hypothesis: string, reference: string, expected: number];

// Vectors from mjpost/sacrebleu test/test_chrf.py (commit f615c72), which checks them to within 1e-4. Only its
// single-sentence cases: the two-sentence corpora (["a", "b"] against ["a", "c"]) are corpus scores.

// test_sentence_level_chrf: sentence_chrf(h, [r], eps_smoothing=True); beta 2, orders 1..6, white space removed.
const SENTENCE_EPS: Vector[] = [
  [
    'Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.',
    'Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.',
    39.14078509,
  ],
  [
    'Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.',
    'A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.',
    31.22557079,
  ],
  [
    'Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.',
    'Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.',
    57.15704367,
  ],
];

// test_cases: corpus_chrf(..., char_order=6, word_order=0, beta=3, eps_smoothing=True).
const BETA3_EPS: Vector[] = [
  ['abcdefg', 'hijklmnop', 0],
  ['a', 'b', 0],
  ['', 'b', 0],
  ['', 'ref', 0],
  ['', 'reference', 0],
  ['aa', 'ab', 8.3333],
  ['a', 'a', 16.6667],
  ['a b c', 'a b c', 50],
  ['a b c', 'abc', 50],
  [
    ' risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .',
    'risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .',
    63.36173,
  ],
  [
    ' Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. ',
    'Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.',
    64.1302698,
  ],
  ['Niemand hat die Absicht, eine Mauer zu errichten', 'Niemand hat die Absicht, eine Mauer zu errichten', 100],
];

// test_cases_effective_order: the same with eps_smoothing=False (sacrebleu's default smoothing).
const BETA3_EFFECTIVE: Vector[] = [
  ['a', 'a', 100],
  ['', 'reference', 0],
  ['a b c', 'a b c', 100],
  ['a b c', 'abc', 100],
  ['', 'c', 0],
  ['aa', 'ab', 25],
];

// test_cases_keep_whitespace: beta=3, remove_whitespace=False, eps_smoothing=False.
const BETA3_WHITESPACE: Vector[] = [
  [
    'Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.',
    'Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.',
    67.3481606,
  ],
  [
    'risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .',
    'risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .',
    65.2414427,
  ],
];

// All defaults (beta 2, effective-order smoothing, white space removed): figures printed by sacrebleu's own
// sacrebleu/metrics/chrf.py and helpers.py at commit f615c72, run on these pairs (CHRF()'s segment statistics and
// _compute_f_score). The emoji case checks n-grams over code points; the last, Python's white space
// (U+3000, U+00A0) being removed.
const DEFAULTS: Vector[] = [
  [SENTENCE_EPS[0][0], SENTENCE_EPS[0][1], 39.14081690316369],
  [SENTENCE_EPS[1][0], SENTENCE_EPS[1][1], 31.225641469352972],
  [SENTENCE_EPS[2][0], SENTENCE_EPS[2][1], 57.157427512824064],
  ['aa', 'ab', 25],
  ['a b c', 'abc', 100],
  ['', 'reference', 0],
  ['hyp', '', 0],
  ['😀 party time 🎉', '😀 partytime 🎊', 87.72426647426647],
  ['The cat\u3000sat\u00a0on the mat', 'The cat sat on the mat.', 94.70553847668111],
];

function check(vectors: Vector[], options?: ChrfOptions): void {
  for (const [hypothesis, reference, expected] of vectors) {
    expect(Math.abs(chrF(hypothesis, reference, options) - expected), `${hypothesis} | ${reference}`).toBeLessThan(
      1e-4,
    );
  }
}

describe('chrF (sacrebleu)', () => {
  it("matches test_chrf.py's sentence-level cases (beta 2, epsilon smoothing)", () => {
    check(SENTENCE_EPS, { epsSmoothing: true });
  });

  it("matches test_chrf.py's beta-3 cases, epsilon and effective-order smoothing", () => {
    check(BETA3_EPS, { beta: 3, epsSmoothing: true });
    check(BETA3_EFFECTIVE, { beta: 3 });
  });

  it("matches test_chrf.py's cases that keep white space", () => {
    check(BETA3_WHITESPACE, { beta: 3, whitespace: true });
  });

  it("matches sacrebleu's defaults (chrF2, effective order) to 1e-9", () => {
    for (const [hypothesis, reference, expected] of DEFAULTS) {
      expect(chrF(hypothesis, reference)).toBeCloseTo(expected, 9);
    }
  });

  it('counts n-grams over code points, white space removed unless kept', () => {
    const grams = charNgrams('a😀 a😀', 2);
    expect([...grams[0]]).toEqual([
      ['a', 2],
      ['😀', 2],
    ]);
    expect([...grams[1]]).toEqual([
      ['a😀', 2],
      ['😀a', 1],
    ]);
    expect(charNgrams('a b', 3, true)[2].get('a b')).toBe(1);
  });
});

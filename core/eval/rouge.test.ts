import { describe, expect, it } from 'vitest';
import { lcsLength, rougeL, rougeLScores, rougeTokens } from './rouge';

// Vectors from google-research/google-research rouge/rouge_scorer_test.py (the rouge-score package's tests; its
// "AgainstRouge155" figures come from runs of the official ROUGE-1.5.5). There `scorer.score(target, prediction)`:
// the target is our reference, the prediction our answer. The two line pairs are rouge/testdata/target.txt and
// rouge/testdata/prediction.txt, lines 1 and 2.
const TARGETS = [
  "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
  "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
];
const PREDICTIONS = [
  "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
  "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
];

describe('ROUGE-L (rouge-score)', () => {
  it('matches rouge_scorer_test.py on its small cases', () => {
    // testRougeLConsecutive / testRougeLNonConsecutive: P 1, R 2/3, F 4/5.
    for (const prediction of ['testing one', 'testing two']) {
      const scores = rougeLScores(prediction, 'testing one two');
      expect(scores.precision).toBeCloseTo(1, 12);
      expect(scores.recall).toBeCloseTo(2 / 3, 12);
      expect(scores.fmeasure).toBeCloseTo(4 / 5, 12);
    }
    // testRougeEmpty: an empty prediction scores 0.
    expect(rougeLScores('', 'testing one two')).toEqual({ precision: 0, recall: 0, fmeasure: 0 });
  });

  it('matches rouge_scorer_test.py testRougeLAgainstRouge155 (ROUGE-1.5.5) to 5 places', () => {
    const expected = [
      { recall: 0.40741, precision: 0.6875, fmeasure: 0.51163 },
      { recall: 0.40476, precision: 0.65385, fmeasure: 0.5 },
    ];
    expected.forEach((want, i) => {
      const got = rougeLScores(PREDICTIONS[i], TARGETS[i]);
      expect(got.recall).toBeCloseTo(want.recall, 5);
      expect(got.precision).toBeCloseTo(want.precision, 5);
      expect(got.fmeasure).toBeCloseTo(want.fmeasure, 5);
      expect(rougeL(PREDICTIONS[i], TARGETS[i])).toBe(got.fmeasure);
    });
  });

  it('finds the LCS of rouge_scorer_test.py testLcsTable', () => {
    const ref = ['1', '2', '3', '4', '5'];
    expect(lcsLength(ref, ['2', '5', '3', '4'])).toBe(3);
    expect(lcsLength(ref, ['8', '9'])).toBe(0);
    expect(lcsLength([], ref)).toBe(0);
  });

  it('tokenizes as tokenize.py does: lower-case, runs outside [a-z0-9] split, so non-ASCII letters split too', () => {
    expect(rougeTokens("It's 3:30, O'Brien!")).toEqual(['it', 's', '3', '30', 'o', 'brien']);
    expect(rougeTokens('Café naïve')).toEqual(['caf', 'na', 've']);
    expect(rougeTokens('北京 / ...')).toEqual([]);
    // A reference of symbols only has no tokens: 0, as rouge-score's empty case.
    expect(rougeL('w1 w2', '/')).toBe(0);
    // Order matters (a subsequence: "the cat" of 3 tokens each way), case does not.
    expect(rougeL('The cat sat', 'sat the CAT')).toBeCloseTo(2 / 3, 12);
  });
});

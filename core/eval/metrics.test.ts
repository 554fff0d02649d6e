import { describe, expect, it } from 'vitest';
import { answerKind, chrF, contains, exactMatch, METRICS, metricsFor, rougeL } from './metrics';
import { normalizeAnswer } from './normalize';

describe('normalizeAnswer', () => {
  it("does SQuAD's steps: lower-case, punctuation deleted, articles dropped, white space collapsed", () => {
    expect(normalizeAnswer('  The Eiffel   Tower! ')).toBe('eiffel tower');
    expect(normalizeAnswer('U.S.A.')).toBe('usa'); // deleted, not replaced by a space
    expect(normalizeAnswer('e-mail, $5 & +1')).toBe('email 5 1'); // & is \p{P}; $ and + are SQuAD's ASCII symbols
    expect(normalizeAnswer('a an the')).toBe('');
  });

  it('drops articles only as whole words, with unicode word characters', () => {
    expect(normalizeAnswer('theater and another')).toBe('theater and another');
    // An ASCII \b would see a boundary between "a" and "é" and drop the "a".
    expect(normalizeAnswer('aéro')).toBe('aéro');
    expect(normalizeAnswer('The 北京')).toBe('北京');
  });

  it('is unicode-aware: NFKC, unicode punctuation and white space', () => {
    expect(normalizeAnswer('ＰＡＲＩＳ')).toBe('paris'); // full-width
    expect(normalizeAnswer('ﬁsh')).toBe('fish'); // ligature
    expect(normalizeAnswer('cafe\u0301')).toBe('café'); // decomposed → composed
    expect(normalizeAnswer('Don’t «stop»')).toBe('dont stop'); // typographic quotes are \p{P}
    expect(normalizeAnswer('¿Qué?')).toBe('qué');
    expect(normalizeAnswer('new\u00a0york\u3000city\t\n')).toBe('new york city');
    expect(normalizeAnswer('ΑΘΗΝΑ')).toBe('αθηνα');
  });
});

describe('exactMatch', () => {
  it('is 1 exactly when the normalized strings are equal', () => {
    expect(exactMatch('The Eiffel Tower.', 'eiffel tower')).toBe(1);
    expect(exactMatch('An apple', 'apple')).toBe(1);
    expect(exactMatch('don’t', "Don't")).toBe(1);
    expect(exactMatch('１２', '12')).toBe(1);
    expect(exactMatch('Paris', 'Parisian')).toBe(0);
    expect(exactMatch('Paris, France', 'Paris')).toBe(0);
    expect(exactMatch('12', '1 2')).toBe(0);
  });

  it("scores two empty answers 1, as SQuAD's script does", () => {
    expect(exactMatch('', '...')).toBe(1);
    expect(exactMatch('the', '')).toBe(1);
  });
});

describe('contains', () => {
  it('finds the normalized reference as whole words in the normalized answer', () => {
    expect(contains('The capital of France is Paris.', 'paris')).toBe(1);
    expect(contains('I think it is New York City', 'the New York')).toBe(1);
    expect(contains('New York', 'New-York')).toBe(0); // SQuAD deletes the hyphen: newyork
    expect(contains('It costs 150 dollars', '5')).toBe(0);
    expect(contains('category', 'cat')).toBe(0);
    expect(contains('I live in York', 'New York')).toBe(0);
    // The first occurrence ("15") is inside a word, the second stands alone.
    expect(contains('15 or 5', '5')).toBe(1);
  });

  it('needs no word boundary in scripts written without spaces', () => {
    expect(contains('首都是北京。', '北京')).toBe(1);
    expect(contains('答えは東京です', '東京')).toBe(1);
  });

  it('is 0 for an empty reference, or one that normalizes to nothing', () => {
    expect(contains('anything', '')).toBe(0);
    expect(contains('the answer', 'The.')).toBe(0);
  });
});

describe('METRICS', () => {
  it('describes each metric and scores through it', () => {
    for (const [name, metric] of Object.entries(METRICS)) {
      expect(metric.name).toBe(name);
      expect(metric.description.length).toBeGreaterThan(20);
      expect(metric.fits.length).toBeGreaterThan(0);
      expect(metric.higherIsBetter).toBe(true);
      expect(metric.score('the answer', 'the answer')).toBe(metric.max);
      expect(metric.score('xyz', 'abc')).toBe(0);
    }
    expect(METRICS.rougeL.score('testing one', 'testing one two')).toBe(rougeL('testing one', 'testing one two'));
    expect(METRICS.chrF.score('aa', 'ab')).toBe(chrF('aa', 'ab'));
  });

  it('offers metrics by the kind of answer', () => {
    expect(metricsFor('short').map((m) => m.name)).toEqual(['exactMatch', 'contains', 'chrF']);
    expect(metricsFor('free').map((m) => m.name)).toEqual(['rougeL', 'chrF']);
  });

  it('fits the metrics to the references: short answers, or free text', () => {
    expect(answerKind(['Lima', 'Santiago de Chile', null, 'Paris'])).toBe('short');
    expect(
      answerKind([
        'The capital of Peru is Lima, on the coast.',
        'Lima',
        'It rains little there, though fog is common.',
      ]),
    ).toBe('free');
    expect(answerKind([null])).toBe('free');
    expect(metricsFor('short').map((m) => m.name)).toEqual(['exactMatch', 'contains', 'chrF']);
    expect(metricsFor('free').map((m) => m.name)).toEqual(['rougeL', 'chrF']);
  });
});

import { describe, expect, it } from 'vitest';
import { formatSeconds } from './format';

describe('formatSeconds', () => {
  it('shows tenths under ten seconds, then whole seconds rounded up before splitting into minutes and hours', () => {
    expect(formatSeconds(0.23)).toBe('0.2 s');
    expect(formatSeconds(9.96)).toBe('10 s');
    expect(formatSeconds(59.5)).toBe('1 min 0 s');
    expect(formatSeconds(119.5)).toBe('2 min 0 s');
    expect(formatSeconds(61)).toBe('1 min 1 s');
    expect(formatSeconds(3 * 3600 + 125)).toBe('3 h 2 min');
  });
});

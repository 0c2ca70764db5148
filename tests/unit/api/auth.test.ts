import { describe, expect, it } from 'vitest';
import { Guard, hostnameOf, isLoopbackAddress, tokenMatches, bearerToken } from '../../../server/api/auth.js';
import { ApiError } from '../../../server/errors.js';

function codeOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return (err as ApiError).code;
  }
}

describe('host checks', () => {
  it.each(['localhost', 'app.localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1'])('%s is loopback', (h) => {
    expect(isLoopbackAddress(h)).toBe(true);
  });
  it.each(['evil.com', 'localhost.evil.com', '10.0.0.1', '0.0.0.0', '', '[::2]', '128.0.0.1'])('%s is not loopback', (h) => {
    expect(isLoopbackAddress(h)).toBe(false);
  });
  it('strips ports from Host headers', () => {
    expect(hostnameOf('127.0.0.1:4300')).toBe('127.0.0.1');
    expect(hostnameOf('[::1]:4300')).toBe('[::1]');
    expect(hostnameOf('LocalHost')).toBe('localhost');
  });
});

describe('tokens', () => {
  it('compares exactly', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abd', 'abc')).toBe(false);
    expect(tokenMatches('', 'abc')).toBe(false);
  });
  it('parses bearer headers', () => {
    expect(bearerToken('Bearer xyz')).toBe('xyz');
    expect(bearerToken('bearer xyz ')).toBe('xyz');
    expect(bearerToken('Basic xyz')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('Guard', () => {
  const base = { host: '127.0.0.1:4300', origin: undefined, remoteAddress: '127.0.0.1' };

  it('allows the right token on a loopback host', () => {
    expect(codeOf(() => new Guard({ token: 't', loopbackOnly: true }).check({ ...base, token: 't' }))).toBeNull();
  });

  it('refuses a missing or wrong token, a foreign Host and a foreign Origin', () => {
    const g = new Guard({ token: 't', loopbackOnly: true });
    expect(codeOf(() => g.check({ ...base, token: undefined }))).toBe('unauthorized');
    expect(codeOf(() => g.check({ ...base, token: 'x' }))).toBe('unauthorized');
    expect(codeOf(() => g.check({ ...base, host: 'evil.com', token: 't' }))).toBe('forbidden_host');
    expect(codeOf(() => g.check({ ...base, origin: 'http://evil.com', token: 't' }))).toBe('forbidden_origin');
    expect(codeOf(() => g.check({ ...base, origin: 'http://127.0.0.1:9999', token: 't' }))).toBe('forbidden_origin');
    expect(codeOf(() => g.check({ ...base, origin: 'null', token: 't' }))).toBe('forbidden_origin');
    expect(codeOf(() => g.check({ ...base, origin: 'http://127.0.0.1:4300', token: 't' }))).toBeNull();
  });

  it('does not check Host when bound beyond loopback', () => {
    const g = new Guard({ token: 't', loopbackOnly: false });
    expect(codeOf(() => g.check({ ...base, host: 'my-nas.lan:4300', token: 't' }))).toBeNull();
  });

  it('throttles an address after 20 failures for a minute, even with the right token', () => {
    let now = 0;
    const g = new Guard({ token: 't', loopbackOnly: true, now: () => now });
    // Token-less requests are not guesses and never count (a web page could send them).
    for (let i = 0; i < 50; i++) expect(codeOf(() => g.check({ ...base, token: undefined }))).toBe('unauthorized');
    expect(codeOf(() => g.check({ ...base, token: 't' }))).toBeNull();
    for (let i = 0; i < 20; i++) expect(codeOf(() => g.check({ ...base, token: 'bad' }))).toBe('unauthorized');
    expect(codeOf(() => g.check({ ...base, token: 't' }))).toBe('too_many_attempts');
    expect(codeOf(() => g.check({ ...base, remoteAddress: '127.0.0.2', token: 't' }))).toBeNull();
    now = 61_000;
    expect(codeOf(() => g.check({ ...base, token: 't' }))).toBeNull();
  });
});

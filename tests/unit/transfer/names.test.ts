import { describe, expect, it } from 'vitest';
import { numbered, safeName } from '../../../server/transfer/names.js';

const ok = (raw: string) => {
  const r = safeName(raw);
  if (!r.ok) throw new Error(`refused ${JSON.stringify(raw)}: ${r.message}`);
  return r.name;
};
const refused = (raw: string) => {
  const r = safeName(raw);
  return r.ok ? null : r.message;
};

/** What every accepted name must be: one harmless path component. */
function assertSafe(name: string): void {
  expect(name).not.toMatch(/[\\/\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff<>:"|?*]/);
  expect(name).not.toMatch(/^\.{1,2}$/);
  expect(name).not.toMatch(/[. ]$/);
  expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
  expect(name.length).toBeGreaterThan(0);
}

describe('safeName', () => {
  it.each([
    ['../x', /climbs out/],
    ['sub/../../x', /climbs out/],
    ['..', /climbs out/],
    ['a/..', /climbs out/],
    ['..\\..\\windows\\x', /climbs out/],
    ['/etc/passwd', /absolute/],
    ['//tmp/x', /absolute/],
    ['\\\\server\\share\\x', /absolute/],
    ['C:\\x', /absolute/],
    ['c:x', /absolute/],
    ['a\u0000b', /NUL/],
    ['', /no usable/],
    ['.', /no usable/],
    ['...', /no usable/],
    ['   ', /no usable/],
    ['\u202e\u200b', /no usable/],
  ])('refuses %j', (raw, why) => {
    expect(refused(raw)).toMatch(why);
  });

  it.each([
    ['report.pdf', 'report.pdf'],
    ['a.txt:stream', 'a.txt_stream'],
    ['CON', '_CON'],
    ['con.txt', '_con.txt'],
    ['nul.txt.jpg', '_nul.txt.jpg'],
    ['COM0', '_COM0'],
    ['LPT9', '_LPT9'],
    ['console.log', 'console.log'],
    ['name.', 'name'],
    ['name ', 'name'],
    ['name. . ', 'name'],
    ['\u001b[31mred\u001b[0m.txt', '[31mred[0m.txt'],
    ['evil\u202egpj.exe', 'evilgpj.exe'],
    ['zero\u200bwidth.txt', 'zerowidth.txt'],
    ['photos/2024/a.jpg', 'photos_2024_a.jpg'],
    ['./a.txt', 'a.txt'],
    ['.hidden', '.hidden'],
    ['README', 'README'],
    ['readme', 'readme'],
  ])('turns %j into %j', (raw, want) => {
    const name = ok(raw);
    expect(name).toBe(want);
    assertSafe(name);
  });

  it('gives é and e + U+0301 the same name (NFC), so the second becomes "(1)"', () => {
    expect(ok('caf\u00e9.txt')).toBe(ok('cafe\u0301.txt'));
  });

  it('cuts names over 255 bytes and keeps the extension', () => {
    const long = ok('x'.repeat(400) + '.tar.gz');
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(255);
    expect(long.endsWith('.gz')).toBe(true);
    const multibyte = ok('é'.repeat(300) + '.png');
    expect(Buffer.byteLength(multibyte)).toBeLessThanOrEqual(255);
    expect(multibyte.endsWith('.png')).toBe(true);
    assertSafe(multibyte);
  });
});

describe('numbered', () => {
  it('inserts (n) before the extension', () => {
    expect(numbered('report.pdf', 1)).toBe('report (1).pdf');
    expect(numbered('archive', 2)).toBe('archive (2)');
    expect(numbered('.bashrc', 1)).toBe('.bashrc (1)');
  });
  it('stays within 255 bytes', () => {
    const name = numbered('y'.repeat(251) + '.txt', 12);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name.endsWith(' (12).txt')).toBe(true);
  });
});

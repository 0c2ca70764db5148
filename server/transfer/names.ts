// File names from the wire are untrusted. safeName() turns one into a name that
// is a single, harmless path component on Linux, macOS and Windows, or refuses it
// with a reason (../shared/field-notes.md section 4). Traversal and absolute paths
// are refused rather than rewritten; cosmetic hazards are rewritten.

const MAX_NAME_BYTES = 255;
// C0/C1 controls and DEL; includes ESC, so ANSI sequences lose their teeth.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// Bidi overrides/isolates/marks, zero-width characters and the BOM: they make a name look
// like another one (e.g. "gpj.exe" shown as "exe.jpg" with U+202E).
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;
// Characters Windows forbids in names; ':' would also open an NTFS alternate stream.
const WINDOWS_FORBIDDEN = /[<>:"|?*]/g;
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$/i;

export type SafeName = { ok: true; name: string } | { ok: false; code: 'invalid_name'; message: string };

function refuse(message: string): SafeName {
  return { ok: false, code: 'invalid_name', message };
}

export function safeName(raw: string): SafeName {
  if (raw.includes('\u0000')) return refuse('the name contains a NUL byte');
  if (/^[\\/]/.test(raw) || /^[A-Za-z]:/.test(raw)) return refuse(`"${printable(raw)}" is an absolute path`);
  const parts = raw.split(/[\\/]+/);
  if (parts.some((p) => p === '..')) return refuse(`"${printable(raw)}" climbs out of the folder with ".."`);
  // A relative path keeps its folders in the name, flattened: "photos/a.jpg" -> "photos_a.jpg".
  let name = parts.filter((p) => p !== '' && p !== '.').join('_');
  name = name.normalize('NFC').replace(CONTROL, '').replace(INVISIBLE, '').replace(WINDOWS_FORBIDDEN, '_');
  // Windows drops trailing dots and spaces, so "a.txt." and "a.txt" would be one file there.
  name = name.replace(/^[\s]+/, '').replace(/[.\s]+$/, '');
  if (name === '' || /^\.+$/.test(name)) return refuse(`"${printable(raw)}" has no usable characters`);
  const dot = name.indexOf('.');
  const stem = dot === -1 ? name : name.slice(0, dot);
  if (WINDOWS_DEVICE.test(stem)) name = `_${name}`;
  return { ok: true, name: truncate(name, MAX_NAME_BYTES) };
}

/** `name (n).ext` for n >= 1: the candidates tried when `name` already exists. */
export function numbered(name: string, n: number): string {
  const { stem, ext } = splitExt(name);
  const suffix = ` (${n})`;
  return truncateStem(stem, MAX_NAME_BYTES - Buffer.byteLength(suffix + ext)) + suffix + ext;
}

function splitExt(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf('.');
  // A leading dot is a hidden file, not an extension; a very long "extension" is part of the stem.
  if (dot <= 0 || Buffer.byteLength(name.slice(dot)) > 32) return { stem: name, ext: '' };
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/** Cuts a name to maxBytes of UTF-8, keeping its extension and never splitting a character. */
function truncate(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const { stem, ext } = splitExt(name);
  return truncateStem(stem, maxBytes - Buffer.byteLength(ext)) + ext;
}

function truncateStem(stem: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of stem) {
    const b = Buffer.byteLength(ch);
    if (bytes + b > maxBytes) break;
    out += ch;
    bytes += b;
  }
  return out;
}

/** A name as it may be shown in an error message: no controls, bounded length. */
export function printable(raw: string): string {
  const clean = raw.replace(CONTROL, '?').replace(INVISIBLE, '?');
  return clean.length > 80 ? `${clean.slice(0, 77)}...` : clean;
}

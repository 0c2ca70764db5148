// ChunkFile writes whole blocks with O_DIRECT where the filesystem allows it and
// everything else through the ordinary descriptor; either way the bytes read back
// are the bytes written.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ChunkFile } from '../../../server/transfer/chunk-file.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function roundTrip(base: string): Promise<boolean> {
  const dir = mkdtempSync(join(base, 'chunk-file-'));
  dirs.push(dir);
  const path = join(dir, 'x.part');
  const chunk = 64 * 1024;
  // Two whole chunks, written out of order, and a tail that is not a whole block.
  const data = randomBytes(2 * chunk + 1000);
  const file = await ChunkFile.open(path, 'fresh');
  const direct = file.direct;
  await file.write(data.subarray(chunk, 2 * chunk), chunk);
  await file.write(data.subarray(2 * chunk), 2 * chunk);
  await file.write(data.subarray(0, chunk), 0);
  await file.fh.sync();
  await file.close();
  expect(readFileSync(path).equals(data)).toBe(true);
  // Reopened for a resume: the bytes are kept and can be overwritten in place.
  const again = await ChunkFile.open(path, 'keep');
  const patch = randomBytes(chunk);
  await again.write(patch, 0);
  await again.close();
  expect(readFileSync(path).equals(Buffer.concat([patch, data.subarray(chunk)]))).toBe(true);
  return direct;
}

it('writes and rewrites chunks on a disk filesystem (O_DIRECT where available)', async () => {
  await roundTrip(tmpdir());
});

it('falls back to ordinary writes where O_DIRECT is refused (tmpfs)', async () => {
  if (!existsSync('/dev/shm')) return;
  await roundTrip('/dev/shm');
});

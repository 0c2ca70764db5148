// Positional reads and writes that finish the whole buffer, and hashing a file.

import { createHash } from 'node:crypto';
import { stat, type FileHandle } from 'node:fs/promises';
import { ApiError } from '../errors.js';
import { printable } from './names.js';

const HASH_READ = 1024 * 1024;

export async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw Object.assign(new Error('the file got shorter while it was being sent'), { code: 'file_changed' });
    done += bytesRead;
  }
}

export async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** SHA-256 (hex) of the first `size` bytes of a file. */
export async function hashFile(fh: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_READ);
  for (let pos = 0; pos < size; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex');
}

/** Size of a regular file the daemon can read, or an ApiError saying why not. */
export async function fileToSend(path: string): Promise<{ size: number }> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new ApiError('invalid_path', `${printable(path)} is not a regular file`);
    return { size: s.size };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ApiError('file_not_found', `${printable(path)} does not exist`);
    throw new ApiError('invalid_path', `cannot read ${printable(path)}: ${code}`);
  }
}

// Test payloads and the check that makes a figure worth anything: every received
// file is hashed independently of the daemon and compared with what was sent.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Daemon } from './daemon.js';

export interface Payload {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

/** Thrown when a received file is not the file that was sent: the run must fail loudly. */
export class VerificationError extends Error {
  override name = 'VerificationError';
}

const CHUNK = 1024 * 1024;
const exec = promisify(execFile);

/** Random bytes (incompressible, not sparse), written in 1 MiB pieces, hashed as written. */
export async function makePayload(dir: string, name: string, size: number): Promise<Payload> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  const hash = createHash('sha256');
  try {
    for (let done = 0; done < size; ) {
      const buf = randomBytes(Math.min(CHUNK, size - done));
      hash.update(buf);
      await fh.write(buf);
      done += buf.length;
    }
  } finally {
    await fh.close();
  }
  return { path, name, size, sha256: hash.digest('hex') };
}

export async function makeSmallPayloads(dir: string, count: number, size: number): Promise<Payload[]> {
  const out: Payload[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${String(i).padStart(4, '0')}.bin`;
    const buf = randomBytes(size);
    await writeFile(join(dir, name), buf);
    out.push({ path: join(dir, name), name, size, sha256: createHash('sha256').update(buf).digest('hex') });
  }
  return out;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sha256Download(d: Daemon, port: number, name: string): Promise<string> {
  const res = await fetch(`${d.base}/api/peers/${port}/files/${encodeURIComponent(name)}`, { headers: { authorization: `Bearer ${d.token}` } });
  if (res.status !== 200 || !res.body) throw new VerificationError(`downloading ${name} from peer ${port}: HTTP ${res.status}`);
  const hash = createHash('sha256');
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * Hashes the received copy: straight from the peer's inbox on disk when the data dir
 * has the documented layout (fast), otherwise downloaded through the API.
 */
export async function verifyReceived(d: Daemon, port: number, savedAs: string | null, want: Payload): Promise<void> {
  if (!savedAs) throw new VerificationError(`${want.name}: completed without a savedAs name`);
  const onDisk = join(d.dataDir, 'peers', String(port), 'inbox', savedAs);
  const got = existsSync(onDisk) ? await sha256File(onDisk) : await sha256Download(d, port, savedAs);
  if (got !== want.sha256) throw new VerificationError(`${want.name} received as ${savedAs} by peer ${port} has SHA-256 ${got}, sent ${want.sha256}`);
}

export async function verifyLocal(path: string, want: Payload, what: string): Promise<void> {
  const got = await sha256File(path);
  if (got !== want.sha256) throw new VerificationError(`${what}: ${path} has SHA-256 ${got}, sent ${want.sha256}`);
}

/**
 * Reads `payload` through once so every contender starts with it in the page cache, and
 * returns the share of it that was cached before (from util-linux `fincore`; null
 * without it). On the VMs we measure, a DAMON pageout scheme evicts a file read only
 * every half minute, and reading it back from the disk cost its reader about 1.3 CPU-s
 * per GiB of system time more than from the cache (curl 1.9 against 0.5): whichever
 * item came first after an eviction paid for it, which moved C (curl) and scp by run.
 */
export async function warmPayload(payload: Payload): Promise<number | null> {
  const before = await exec('fincore', ['--noheadings', '--bytes', '--output', 'RES', payload.path]).then(
    ({ stdout }) => Number(stdout.trim()) / Math.max(1, payload.size),
    () => null,
  );
  const fh = await open(payload.path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    while ((await fh.read(buf, 0, CHUNK, null)).bytesRead > 0);
  } finally {
    await fh.close();
  }
  return before;
}

/**
 * Writes back every dirty page before the next measurement, so one item's written
 * file (scp does not fsync) is not flushed on the next item's time.
 */
export async function flushDisk(): Promise<void> {
  await exec('sync');
}

// A multipart upload (POST /api/peers/:port/transfers): "to" fields, then for each
// file an optional "size" field and the "file" part. Parts stream into the peer's
// outbox, hashed as they arrive, never held in memory. A file whose size was
// declared starts sending at once, while its bytes are still arriving; the others
// are sent once the whole request has arrived and checked out.

import { randomUUID } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { copyInto, payloadPool } from '../protocol/buffer-pool.js';
import { MAX_SIZE } from '../protocol/transfer-messages.js';
import { writeFully } from '../transfer/file-io.js';
import { GrowingFile } from '../transfer/growing-file.js';
import { hashThread } from '../transfer/hasher.js';
import { safeName } from '../transfer/names.js';
import type { OutgoingFile, TransferService } from '../transfer/service.js';
import type { TransferView } from '../transfer/view.js';

// Batch small multipart pieces into fewer, larger file writes.
const WRITE_HIGH_WATER = 1024 * 1024;

/** Receives the whole upload; answers the records of every transfer it started. */
export async function receiveUpload(
  req: FastifyRequest,
  port: number,
  transfers: TransferService,
  resolveTargets: (names: string[]) => PeerConnection[],
): Promise<TransferView[]> {
  const outbox = join(transfers.peerDir(port), 'outbox');
  await mkdir(outbox, { recursive: true, mode: 0o700 });
  const names: string[] = [];
  let targets: PeerConnection[] | null = null;
  let declared: number | null = null;
  const stored: OutgoingFile[] = []; // complete, sent when the request ends
  const started: TransferView[] = []; // already sending
  const growing: GrowingFile[] = [];
  const paths: string[] = [];
  const sending = new Set<string>(); // outbox files that running transfers own
  try {
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (part.fieldname === 'size') {
          declared = parseSize(String(part.value));
          continue;
        }
        if (part.fieldname !== 'to') throw new ApiError('bad_request', `unexpected field "${part.fieldname}"`);
        if (targets) throw new ApiError('bad_request', '"to" fields must come before the file parts');
        names.push(String(part.value));
        continue;
      }
      if (part.fieldname !== 'file') throw new ApiError('bad_request', `unexpected file field "${part.fieldname}"`);
      targets ??= resolveTargets(names);
      const safe = safeName(part.filename ?? '');
      if (!safe.ok) throw new ApiError('invalid_path', `file name: ${safe.message}`);
      const path = join(outbox, randomUUID());
      paths.push(path);
      const file: OutgoingFile = { path, name: safe.name, size: declared ?? 0, mime: part.mimetype || 'application/octet-stream' };
      const fh = await open(path, 'wx', 0o600);
      let source: GrowingFile | undefined;
      if (declared !== null) {
        source = new GrowingFile(declared);
        growing.push(source);
        sending.add(path);
        started.push(...transfers.send(port, targets, [{ ...file, growing: source }], { removeAfter: true }));
        declared = null;
      }
      const { size, sha256 } = await store(part.file, fh, source);
      if (source) source.finish(sha256);
      else stored.push({ ...file, size, sha256 });
    }
    if (!targets) throw new ApiError('bad_request', names.length ? 'no "file" part in the upload' : 'no "to" field and no "file" part');
    if (declared !== null) throw new ApiError('bad_request', 'a "size" field must be followed by its "file" part');
    // Records as they are now: the streamed ones may be well under way, or done.
    return [...started.map((t) => transfers.get(t.id)), ...transfers.send(port, targets, stored, { removeAfter: true })];
  } catch (err) {
    // Let the rest of the body drain at full speed (nobody reads the parser any more, so it
    // would otherwise stall until the request timeout), so the refusal is answered now.
    req.raw.unpipe();
    req.raw.resume();
    // Transfers already under way fail and tell their receivers; their outbox copies go
    // when they end. Files not yet sent are removed now.
    const why = err instanceof ApiError ? `the upload was refused: ${err.message}` : `the upload broke off: ${(err as Error).message}`;
    const reason = { code: 'upload_failed', message: why };
    for (const g of growing) g.fail(reason);
    for (const t of started) transfers.abort(t.id, reason);
    await Promise.all(paths.filter((p) => !sending.has(p)).map((p) => unlink(p).catch(() => {})));
    throw err;
  }
}

function parseSize(value: string): number {
  const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n > MAX_SIZE) throw new ApiError('bad_request', `"size" must be the file's byte count, got ${JSON.stringify(value.slice(0, 40))}`);
  return n;
}

/** Streams one part into `fh`, hashing it; a GrowingFile learns each write once it is on disk. */
async function store(input: NodeJS.ReadableStream, fh: Awaited<ReturnType<typeof open>>, source?: GrowingFile): Promise<{ size: number; sha256: string }> {
  // Hashed on the hash thread as it is written.
  const hash = hashThread.stream();
  let size = 0;
  const sink = new Writable({
    highWaterMark: WRITE_HIGH_WATER,
    writev(chunks, done) {
      const bytes = chunks.reduce((n, c) => n + (c.chunk as Buffer).length, 0);
      if (source && size + bytes > source.size) {
        done(new ApiError('size_mismatch', `the file is longer than its declared size of ${source.size} bytes`));
        return;
      }
      // The pieces (tens of KiB each) are gathered into one pooled buffer: one write, and
      // one hand-over to the hash thread that reads shared memory in place (each piece
      // handed over alone was a message, and a copy of the socket buffer it came in).
      const batch = payloadPool.take(bytes);
      let at = 0;
      for (const c of chunks) {
        copyInto(batch, c.chunk as Buffer, at);
        at += (c.chunk as Buffer).length;
      }
      const hashed = hash.update(batch);
      hashed.catch(() => {});
      writeFully(fh, batch, size)
        .then(() => {
          size += bytes;
          source?.grew(bytes);
          done();
        }, done)
        .finally(() => hashed.finally(() => payloadPool.give(batch)).catch(() => {}));
    },
  });
  try {
    await pipeline(input, sink);
  } catch (err) {
    hash.drop();
    throw err;
  } finally {
    await fh.close();
  }
  if (source && size !== source.size) {
    hash.drop();
    throw new ApiError('size_mismatch', `the file has ${size} bytes, not the declared ${source.size}`);
  }
  return { size, sha256: await hash.digest() };
}

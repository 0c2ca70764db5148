// A multipart upload (POST /api/peers/:port/transfers): "to" fields, then for each
// file an optional "size" field and the "file" part. Parts stream into the peer's
// outbox, hashed as they arrive, never held in memory. A file whose size was
// declared starts sending at once, while its bytes are still arriving; the others
// are sent once the whole request has arrived and checked out.

import { randomUUID } from 'node:crypto';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { MAX_SIZE } from '../protocol/transfer-messages.js';
import { BlockWriter } from '../transfer/block-writer.js';
import { ChunkFile } from '../transfer/chunk-file.js';
import { GrowingFile } from '../transfer/growing-file.js';
import { safeName } from '../transfer/names.js';
import type { OutgoingFile, TransferService } from '../transfer/service.js';
import type { TransferView } from '../transfer/view.js';

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
      const outFile = await ChunkFile.open(path, 'new');
      let source: GrowingFile | undefined;
      if (declared !== null) {
        source = new GrowingFile(declared);
        growing.push(source);
        sending.add(path);
        started.push(...transfers.send(port, targets, [{ ...file, growing: source }], { removeAfter: true }));
        declared = null;
      }
      // A streamed file's GrowingFile has ended by now (its senders have the SHA-256).
      const { size, sha256 } = await store(part.file, outFile, source);
      if (!source) stored.push({ ...file, size, sha256 });
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

/** Streams one part into `file` in blocks, hashing it; a GrowingFile learns each block as it lands. */
async function store(input: Readable, file: ChunkFile, source?: GrowingFile): Promise<{ size: number; sha256: string }> {
  const sink = new BlockWriter(file, source);
  try {
    await sink.from(input);
  } catch (err) {
    sink.drop();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new ApiError('disk_full', `the daemon's disk is full: the upload was not stored (${sink.size} bytes had arrived)`);
    }
    throw err;
  } finally {
    await file.close();
  }
  if (source && sink.size !== source.size) {
    sink.drop();
    throw new ApiError('size_mismatch', `the file has ${sink.size} bytes, not the declared ${source.size}`);
  }
  return { size: sink.size, sha256: await sink.sha256() };
}

// REST routes for transfers and received files: a thin layer over TransferService.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, isAbsolute } from 'node:path';
import type { FastifyInstance } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.js';
import { safeName } from '../transfer/names.js';
import { fileToSend } from '../transfer/file-io.js';
import type { OutgoingFile, TransferService } from '../transfer/service.js';
import { TRANSFER_STATES, type TransferState } from '../transfer/view.js';
import { portParam } from './routes.js';
import { receiveUpload } from './upload.js';
import { ErrorSchema, FileSchema, TransferSchema } from './schemas.js';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorSchema]));
const AUTH = [401, 403, 429];
const MAX_TARGETS = 64;
const MAX_PATHS = 10_000;

export interface TransferRouteDeps {
  transfers: TransferService;
  webRoot: string;
}

function list(value: unknown, what: string, max: number): string[] {
  const items = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(items) || items.length === 0 || items.length > max || !items.every((x) => typeof x === 'string' && x.length > 0)) {
    throw new ApiError('bad_request', `"${what}" must be 1-${max} non-empty strings`);
  }
  return items as string[];
}

export async function transferRoutes(app: FastifyInstance, deps: TransferRouteDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const { transfers } = deps;

  await app.register(fastifyMultipart, {
    // Uploads stream to disk, so the size is bounded by the disk, not by memory.
    limits: { fileSize: Number.MAX_SAFE_INTEGER, files: MAX_PATHS, fields: MAX_TARGETS + MAX_PATHS, fieldSize: 1024, parts: 2 * MAX_PATHS + MAX_TARGETS },
  });

  api.post('/api/peers/:port/transfers', {
    schema: {
      params: Type.Object({ port: Type.String() }),
      // JSON {to, paths} or multipart/form-data (to fields, then file parts): checked in the handler.
      response: { 202: Type.Object({ transfers: Type.Array(TransferSchema) }), ...errors(400, 404, 409, 413, 507, ...AUTH) },
    },
  }, async (req, reply) => {
    const port = portParam(req.params.port);
    if (req.isMultipart()) {
      const resolve = (names: string[]) => [...new Set(list(names, 'to', MAX_TARGETS))].map((t) => transfers.resolveTarget(port, t));
      return reply.code(202).send({ transfers: await receiveUpload(req, port, transfers, resolve) });
    }
    const body = req.body as Record<string, unknown> | null;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).some((k) => k !== 'to' && k !== 'paths')) {
      throw new ApiError('bad_request', 'send JSON {"to": [...], "paths": [...]} or multipart/form-data with "to" fields then "file" parts');
    }
    const targets = [...new Set(list(body.to, 'to', MAX_TARGETS))].map((t) => transfers.resolveTarget(port, t));
    const files: OutgoingFile[] = [];
    for (const path of list(body.paths, 'paths', MAX_PATHS)) {
      if (!isAbsolute(path)) throw new ApiError('invalid_path', `paths must be absolute: ${JSON.stringify(path).slice(0, 200)}`);
      const { size } = await fileToSend(path);
      const safe = safeName(basename(path));
      if (!safe.ok) throw new ApiError('invalid_path', safe.message);
      files.push({ path, name: safe.name, size, mime: 'application/octet-stream' });
    }
    return reply.code(202).send({ transfers: transfers.send(port, targets, files) });
  });

  api.get('/api/transfers', {
    schema: {
      querystring: Type.Object({ peer: Type.Optional(Type.String()), state: Type.Optional(Type.String()) }),
      response: { 200: Type.Object({ transfers: Type.Array(TransferSchema) }), ...errors(400, ...AUTH) },
    },
  }, async (req) => {
    const { peer, state } = req.query;
    if (state !== undefined && !(TRANSFER_STATES as readonly string[]).includes(state)) {
      throw new ApiError('bad_request', `state must be one of ${TRANSFER_STATES.join(', ')}`);
    }
    return { transfers: transfers.list({ peer: peer === undefined ? undefined : portParam(peer), state: state as TransferState | undefined }) };
  });

  api.get('/api/transfers/:id', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, ...AUTH) } },
  }, async (req) => transfers.get(req.params.id));

  api.post('/api/transfers/:id/cancel', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, ...AUTH) } },
  }, async (req) => transfers.cancel(req.params.id));

  api.post('/api/transfers/:id/accept', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, 409, ...AUTH) } },
  }, async (req) => transfers.accept(req.params.id));

  api.post('/api/transfers/:id/reject', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, 409, ...AUTH) } },
  }, async (req) => transfers.reject(req.params.id));

  const TrustParams = Type.Object({ port: Type.String(), id: Type.String({ pattern: '^[0-9a-f]{64}$' }) });
  api.get('/api/peers/:port/trusted', {
    schema: { params: Type.Object({ port: Type.String() }), response: { 200: Type.Object({ trusted: Type.Array(Type.String()) }), ...errors(400, 404, ...AUTH) } },
  }, async (req) => ({ trusted: transfers.trusted(portParam(req.params.port)) }));

  api.put('/api/peers/:port/trusted/:id', {
    schema: { params: TrustParams, response: { 204: Type.Null(), ...errors(400, 404, ...AUTH) } },
  }, async (req, reply) => {
    transfers.trust(portParam(req.params.port), req.params.id);
    return reply.code(204).send(null);
  });

  api.delete('/api/peers/:port/trusted/:id', {
    schema: { params: TrustParams, response: { 204: Type.Null(), ...errors(400, 404, ...AUTH) } },
  }, async (req, reply) => {
    transfers.untrust(portParam(req.params.port), req.params.id);
    return reply.code(204).send(null);
  });

  api.post('/api/transfers/:id/pause', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, 409, ...AUTH) } },
  }, async (req) => transfers.pause(req.params.id));

  api.post('/api/transfers/:id/resume', {
    schema: { params: Type.Object({ id: Type.String() }), response: { 200: TransferSchema, ...errors(404, 409, ...AUTH) } },
  }, async (req) => transfers.resume(req.params.id));

  api.get('/api/peers/:port/files', {
    schema: {
      params: Type.Object({ port: Type.String() }),
      response: { 200: Type.Object({ files: Type.Array(FileSchema) }), ...errors(400, 404, ...AUTH) },
    },
  }, async (req) => ({
    files: transfers.files(portParam(req.params.port)).map((f) => ({ name: f.name, size: f.size, sha256: f.sha256, from: f.fromId, receivedAt: f.receivedAt })),
  }));

  api.get('/api/peers/:port/files/:name', {
    schema: {
      params: Type.Object({ port: Type.String(), name: Type.String() }),
      // The file's bytes, whole (200) or one range (206); streams are sent as they are.
      response: { 200: Type.Unknown(), 206: Type.Unknown(), 416: ErrorSchema, ...errors(400, 404, ...AUTH) },
    },
  }, async (req, reply) => {
    const path = transfers.filePath(portParam(req.params.port), req.params.name);
    const { size } = await stat(path);
    const range = parseRange(req.headers.range, size);
    reply.header('Accept-Ranges', 'bytes');
    if (range === 'unsatisfiable') {
      reply.header('Content-Range', `bytes */${size}`);
      return reply.code(416).send({ error: { code: 'bad_range', message: `the file has ${size} bytes` } });
    }
    reply.header('Content-Type', 'application/octet-stream');
    reply.header('Content-Disposition', `attachment; filename*=UTF-8''${encodeURIComponent(req.params.name)}`);
    if (range) {
      reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`).header('Content-Length', range.end - range.start + 1);
      return reply.send(createReadStream(path, { start: range.start, end: range.end }));
    }
    reply.header('Content-Length', size);
    return reply.send(createReadStream(path));
  });

  api.delete('/api/peers/:port/files/:name', {
    schema: { params: Type.Object({ port: Type.String(), name: Type.String() }), response: { 204: Type.Null(), ...errors(400, 404, ...AUTH) } },
  }, async (req, reply) => {
    await transfers.deleteFile(portParam(req.params.port), req.params.name);
    return reply.code(204).send(null);
  });
}

/** One "bytes=a-b" range (RFC 9110); multiple ranges are served as the whole file. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

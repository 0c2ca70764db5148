// REST routes for peers and connections: a thin layer over the Mesh.
// Every route declares its schemas and every status it can answer.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { Mesh } from '../mesh/mesh.js';
import { ConnectionSchema, ErrorSchema, PeerSchema } from './schemas.js';

const PortParam = Type.Object({ port: Type.String() });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorSchema]));
const AUTH = [401, 403, 429];

export interface RouteDeps {
  mesh: Mesh;
  bus: EventBus;
  version: string;
  peerHost: string;
}

/** A port in a JSON body: a number that is an integer in 1..65535, else 400 invalid_port. */
export function parsePort(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ApiError('invalid_port', `port must be an integer in 1..65535, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

/** A port in the URL path: decimal digits only. */
export function portParam(text: string): number {
  return parsePort(/^[0-9]{1,5}$/.test(text) ? Number(text) : text);
}

const HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseHost(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) throw new ApiError('invalid_host', 'host must be a host name or IP address');
  const bare = value.replace(/^\[(.*)\]$/, '$1');
  if ((bare.includes(':') && /^[0-9a-fA-F:.]+$/.test(bare)) || HOST_PATTERN.test(bare)) return bare;
  throw new ApiError('invalid_host', `"${value}" is not a host name or IP address`);
}

export async function routes(app: FastifyInstance, deps: RouteDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const { mesh } = deps;

  api.get('/api/daemon', {
    schema: {
      response: {
        200: Type.Object({ version: Type.String(), bootId: Type.String(), lastSeq: Type.Integer(), peerHost: Type.String() }),
        ...errors(...AUTH),
      },
    },
  }, async () => ({ version: deps.version, bootId: deps.bus.bootId, lastSeq: deps.bus.lastSeq, peerHost: deps.peerHost }));

  api.get('/api/peers', {
    schema: { response: { 200: Type.Object({ peers: Type.Array(PeerSchema) }), ...errors(...AUTH) } },
  }, async () => ({ peers: mesh.peers() }));

  api.post('/api/peers', {
    schema: {
      // The port's range is checked by parsePort so a bad one gets the specific invalid_port code.
      body: Type.Object({ port: Type.Unknown() }, { additionalProperties: false }),
      response: { 201: PeerSchema, ...errors(400, 409, ...AUTH) },
    },
  }, async (req, reply) => {
    const peer = await mesh.addPeer(parsePort(req.body.port));
    return reply.code(201).send(peer);
  });

  api.get('/api/peers/:port', {
    schema: { params: PortParam, response: { 200: PeerSchema, ...errors(400, 404, ...AUTH) } },
  }, async (req) => mesh.peer(portParam(req.params.port)));

  api.delete('/api/peers/:port', {
    schema: { params: PortParam, response: { 204: Type.Null(), ...errors(400, 404, ...AUTH) } },
  }, async (req, reply) => {
    await mesh.removePeer(portParam(req.params.port));
    return reply.code(204).send(null);
  });

  api.get('/api/peers/:port/connections', {
    schema: {
      params: PortParam,
      response: { 200: Type.Object({ connections: Type.Array(ConnectionSchema) }), ...errors(400, 404, ...AUTH) },
    },
  }, async (req) => ({ connections: mesh.connections(portParam(req.params.port)) }));

  api.post('/api/peers/:port/connections', {
    schema: {
      params: PortParam,
      body: Type.Object({ host: Type.Unknown(), port: Type.Unknown() }, { additionalProperties: false }),
      response: { 201: ConnectionSchema, ...errors(400, 404, 409, 502, 504, ...AUTH) },
    },
  }, async (req, reply) => {
    const port = portParam(req.params.port);
    const conn = await mesh.connect(port, parseHost(req.body.host), parsePort(req.body.port));
    return reply.code(201).send(conn);
  });

  api.delete('/api/peers/:port/connections/:id', {
    schema: {
      params: Type.Object({ port: Type.String(), id: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
      response: { 204: Type.Null(), ...errors(400, 404, ...AUTH) },
    },
  }, async (req, reply) => {
    mesh.disconnect(portParam(req.params.port), req.params.id);
    return reply.code(204).send(null);
  });
}

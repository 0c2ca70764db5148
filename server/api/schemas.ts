// TypeBox schemas of the API objects (docs/API.md "Objects"); they also serialise responses.

import { Type } from 'typebox';

export const ReasonSchema = Type.Object({ code: Type.String(), message: Type.String() });

export const ErrorSchema = Type.Object({ error: ReasonSchema });

export const PeerSchema = Type.Object({
  port: Type.Integer(),
  id: Type.String(),
  shortId: Type.String(),
  state: Type.Union([Type.Literal('listening'), Type.Literal('error')]),
  error: Type.Union([ReasonSchema, Type.Null()]),
  createdAt: Type.String(),
  connections: Type.Integer(),
});

export const ConnectionSchema = Type.Object({
  id: Type.String(),
  shortId: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  direction: Type.Union([Type.Literal('in'), Type.Literal('out')]),
  state: Type.Union([Type.Literal('handshaking'), Type.Literal('open'), Type.Literal('closed')]),
  local: Type.Boolean(),
  connectedAt: Type.Union([Type.String(), Type.Null()]),
  bytesIn: Type.Integer(),
  bytesOut: Type.Integer(),
  rttMs: Type.Union([Type.Number(), Type.Null()]),
});

export const TransferSchema = Type.Object({
  id: Type.String(),
  direction: Type.Union([Type.Literal('in'), Type.Literal('out')]),
  peer: Type.Integer(),
  from: Type.String(),
  to: Type.String(),
  name: Type.String(),
  size: Type.Integer(),
  bytesDone: Type.Integer(),
  state: Type.String(),
  speed: Type.Union([Type.Number(), Type.Null()]),
  eta: Type.Union([Type.Number(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  savedAs: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([ReasonSchema, Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const FileSchema = Type.Object({
  name: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  from: Type.String(),
  receivedAt: Type.String(),
});

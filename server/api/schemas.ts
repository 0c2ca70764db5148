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

// Baseline for F: a bare loop doing what a mesh of N peers needs, and nothing else:
// N fresh identities (the peers' own kind: ECDSA P-256, self-signed), N TLS 1.3
// servers on loopback, and one mutually authenticated connection per pair, each new
// server dialling all earlier ones at once. Prints {"ms": T, "connections": C}.

import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createIdentity } from '../../server/peer/identity.js';

const n = Number(process.argv[2]);
const t0 = performance.now();
const servers: Array<{ port: number; server: tls.Server }> = [];
const sockets: tls.TLSSocket[] = [];
const handshakes: Array<Promise<void>> = [];

for (let i = 0; i < n; i++) {
  const { keyPem: key, certPem: cert } = await createIdentity(`bench-${i}`);
  const opts = { key, cert, minVersion: 'TLSv1.3' as const };
  let accepted!: () => void;
  let expected = i === n - 1 ? 0 : n - 1 - i; // later servers dial this one
  const allIn = new Promise<void>((res) => (accepted = res));
  if (expected === 0) accepted();
  const server = tls.createServer({ ...opts, requestCert: true, rejectUnauthorized: false }, (socket) => {
    sockets.push(socket);
    if (--expected === 0) accepted();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  handshakes.push(allIn);
  for (const { port } of servers) {
    handshakes.push(new Promise<void>((res, rej) => {
      const s = tls.connect({ ...opts, port, host: '127.0.0.1', rejectUnauthorized: false, checkServerIdentity: () => undefined }, () => res());
      s.once('error', rej);
      sockets.push(s);
    }));
  }
  servers.push({ port: (server.address() as AddressInfo).port, server });
}
await Promise.all(handshakes);
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, connections: (n * (n - 1)) / 2 }) + '\n');
for (const s of sockets) s.destroy();
for (const { server } of servers) server.close();
process.exit(0);

// Baselines measured in the same session as the scenarios: the bare Node pipe (plain
// TCP and TLS 1.3) and, in sshd.ts, scp and rsync, each a run whose received file was
// hashed and compared with the sent one; and C's floor, a bare multipart upload route
// that counts the bytes it is sent (checked) and keeps none.

import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createIdentity } from '../../server/peer/identity.js';
import { DAEMON_NODE_FLAGS, daemonEnv } from '../../server/node-flags.js';
import { spawnChild } from './child.js';
import { cpuSeconds } from './cpu.js';
import { postUpload } from './link.js';
import { verifyLocal, type Payload } from './files.js';
import { mibPerSec } from './stats.js';

export interface TlsFiles {
  server: { key: string; cert: string };
  client: { key: string; cert: string };
}

/** Two identities of the kind our peers use (ECDSA P-256, self-signed), as PEM files. */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  const write = async (label: string) => {
    const id = await createIdentity(label);
    const key = join(dir, `${label}.key.pem`);
    const cert = join(dir, `${label}.cert.pem`);
    writeFileSync(key, id.keyPem, { mode: 0o600 });
    writeFileSync(cert, id.certPem);
    return { key, cert };
  };
  return { server: await write('bench-server'), client: await write('bench-client') };
}

/** Timed by the receiver: from the accepted (TLS: secured) connection to the fsynced file. */
export async function runPipe(kind: 'tcp' | 'tls', payload: Payload, dir: string, certs: TlsFiles): Promise<number> {
  const out = join(dir, `pipe-${kind}.out`);
  const env = (end: { key: string; cert: string }) => ({ BENCH_TLS_KEY: end.key, BENCH_TLS_CERT: end.cert });
  const recv = spawnChild('pipe-child.ts', ['recv', kind, out], env(certs.server));
  try {
    const { port } = await recv.next<{ port: number }>();
    const send = spawnChild('pipe-child.ts', ['send', kind, String(port), payload.path], env(certs.client));
    const { ms, bytes } = await recv.next<{ ms: number; bytes: number }>();
    const code = await send.exited;
    if (code !== 0) throw new Error(`pipe sender exited with ${code}`);
    if (bytes !== payload.size) throw new Error(`${kind} pipe received ${bytes} bytes of ${payload.size}`);
    await verifyLocal(out, payload, `${kind} pipe`);
    return mibPerSec(payload.size, ms);
  } finally {
    await recv.kill();
    await rm(out, { force: true });
  }
}

export interface BareUpload {
  /** One upload of `payload`: MiB/s, and CPU seconds of the server and of the client. */
  run(payload: Payload): Promise<{ mibps: number; serverCpu: number; clientCpu: number }>;
  stop(): Promise<void>;
}

/**
 * C's floor: the same multipart upload, with the same client, to a bare Fastify route
 * with @fastify/multipart that only counts the bytes (upload-server-child.ts). Timed
 * from starting the client until the answer; the count is checked.
 */
export async function startBareUpload(): Promise<BareUpload> {
  // With the daemon's own V8 flags and malloc tunables: without them, collections of the
  // body buffers and the page faults of their fresh heap would make the floor look more
  // expensive than the daemon's upload path has to be.
  const server = spawnChild('upload-server-child.ts', [], { GLIBC_TUNABLES: daemonEnv().GLIBC_TUNABLES! }, [...DAEMON_NODE_FLAGS]);
  const { port } = await server.next<{ port: number }>();
  const url = `http://127.0.0.1:${port}/upload`;
  return {
    async run(payload) {
      const cpu0 = cpuSeconds(server.proc.pid!);
      const t0 = performance.now();
      const res = await postUpload({ url, fields: [['to', 'bare'], ['size', String(payload.size)]] }, payload);
      const ms = performance.now() - t0;
      const bytes = (res.body as { bytes?: number } | null)?.bytes;
      if (res.status !== 202 || bytes !== payload.size) throw new Error(`bare upload answered ${res.status} ${JSON.stringify(res.body)} for ${payload.size} bytes`);
      return { mibps: mibPerSec(payload.size, ms), serverCpu: cpuSeconds(server.proc.pid!) - cpu0, clientCpu: res.clientCpu };
    },
    stop: () => server.kill(),
  };
}

// Baseline "ceiling of the transport": a bare Node pipe between two processes, over
// plain TCP or TLS 1.3 with client certificates (as our peers use). The sender reads
// the file with 1 MiB reads and writes them to the socket; the receiver joins what
// arrives into 4 MiB buffers (one write per 16 KiB TLS record halves throughput, see
// shared field notes) and fsyncs once at the end, as the daemon makes files durable.
//
//   recv tcp|tls <out-file>     prints {"port": N}, then {"ms": T, "bytes": B}
//   send tcp|tls <port> <file>
// For tls, BENCH_TLS_KEY and BENCH_TLS_CERT name the PEM files of this end's identity.

import { createReadStream, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';

const [role, kind, arg, file] = process.argv.slice(2);
const JOIN_BYTES = 4 * 1024 * 1024;
const MAX_QUEUED = 4 * JOIN_BYTES;

function tlsOptions(): { key: Buffer; cert: Buffer; minVersion: 'TLSv1.3' } {
  return { key: readFileSync(process.env.BENCH_TLS_KEY!), cert: readFileSync(process.env.BENCH_TLS_CERT!), minVersion: 'TLSv1.3' };
}

async function receive(out: string): Promise<void> {
  const fh = await open(out, 'w');
  const onSocket = (socket: net.Socket) => {
    const t0 = performance.now();
    let parts: Buffer[] = [];
    let partBytes = 0;
    let queued = 0;
    let bytes = 0;
    let writing: Promise<unknown> = Promise.resolve();
    const flush = () => {
      if (partBytes === 0) return;
      const buf = Buffer.concat(parts, partBytes);
      parts = [];
      partBytes = 0;
      queued += buf.length;
      writing = writing.then(async () => {
        await fh.write(buf);
        queued -= buf.length;
        if (queued < MAX_QUEUED && socket.isPaused()) socket.resume();
      });
    };
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      partBytes += chunk.length;
      bytes += chunk.length;
      if (partBytes >= JOIN_BYTES) flush();
      if (queued >= MAX_QUEUED) socket.pause();
    });
    socket.on('end', async () => {
      flush();
      await writing;
      await fh.sync();
      await fh.close();
      process.stdout.write(JSON.stringify({ ms: performance.now() - t0, bytes }) + '\n');
      process.exit(0);
    });
    socket.on('error', (err) => {
      console.error(err);
      process.exit(1);
    });
  };
  const server = kind === 'tls'
    ? tls.createServer({ ...tlsOptions(), requestCert: true, rejectUnauthorized: false }).on('secureConnection', onSocket)
    : net.createServer(onSocket);
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n');
  });
}

function send(port: number, path: string): void {
  const go = (socket: net.Socket) => {
    createReadStream(path, { highWaterMark: 1024 * 1024 }).pipe(socket);
    socket.on('finish', () => socket.destroySoon());
  };
  const socket: net.Socket = kind === 'tls'
    ? tls.connect({ ...tlsOptions(), port, host: '127.0.0.1', rejectUnauthorized: false, checkServerIdentity: () => undefined }, () => go(socket))
    : net.connect({ port, host: '127.0.0.1' }, () => go(socket));
  socket.on('error', (err) => {
    console.error(err);
    process.exit(1);
  });
  socket.on('close', () => process.exit(0));
}

if (role === 'recv') await receive(arg!);
else if (role === 'send') send(Number(arg), file!);
else throw new Error('usage: pipe-child recv|send tcp|tls ...');

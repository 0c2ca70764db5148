// A sending peer and a receiving peer, in two daemons (scenario A's shape) or in one
// (B's), with the calls a user's script makes to move files between them and the
// wait for the receiver's transfer.completed that ends every timed interval.

import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { freePorts } from '../../tests/helpers/ports.js';
import { ApiError, type Daemon, type EventStream, type MeshEvent } from './daemon.js';
import { verifyReceived, type Payload } from './files.js';

export interface End {
  daemon: Daemon;
  port: number;
  id: string;
  events: EventStream;
}

export interface Link {
  from: End;
  to: End;
}

/** Two daemons, one peer each; the receiver trusts the sender so offers go straight through. */
export async function linkAcross(a: Daemon, b: Daemon): Promise<Link> {
  const [pa, pb] = await freePorts(2);
  const sender = await a.api.addPeer(pa!);
  const receiver = await b.api.addPeer(pb!);
  await b.api.trust(pb!, sender.id);
  await a.api.connect(pa!, '127.0.0.1', pb!);
  return {
    from: { daemon: a, port: pa!, id: sender.id, events: await a.events() },
    to: { daemon: b, port: pb!, id: receiver.id, events: await b.events() },
  };
}

/** Two peers of one daemon: they connect to each other by themselves. */
export async function linkWithin(d: Daemon): Promise<Link> {
  const [pa, pb] = await freePorts(2);
  const sender = await d.api.addPeer(pa!);
  const receiver = await d.api.addPeer(pb!);
  const deadline = Date.now() + 15_000;
  while (!(await d.api.connections(pa!)).some((c) => c.id === receiver.id && c.state === 'open')) {
    if (Date.now() > deadline) throw new Error(`peers ${pa} and ${pb} of ${d.name} did not connect`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const events = await d.events();
  return { from: { daemon: d, port: pa!, id: sender.id, events }, to: { daemon: d, port: pb!, id: receiver.id, events } };
}

const BAD_END = new Set(['transfer.failed', 'transfer.canceled', 'transfer.rejected', 'transfer.paused']);

/**
 * Resolves with the receiver's completed transfers once every name in `names` has
 * completed at `link.to`; rejects on any failure, pause or waiting offer on either end.
 * Subscribe before sending, so nothing can be missed.
 */
export function awaitCompleted(link: Link, names: readonly string[], timeoutMs: number): Promise<Map<string, any>> {
  const pending = new Set(names);
  const done = new Map<string, any>();
  return new Promise((resolve, reject) => {
    const offs: Array<() => void> = [];
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (err) reject(err);
      else resolve(done);
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms with ${pending.size} of ${names.length} files not completed at peer ${link.to.port}`)), timeoutMs);
    const watch = (e: MeshEvent) => {
      const t = e.data?.transfer;
      if (!t || (t.peer !== link.from.port && t.peer !== link.to.port)) return;
      if (BAD_END.has(e.type)) return finish(new Error(`${e.type} for ${t.name} at peer ${t.peer}: ${JSON.stringify(t.error)}`));
      if (e.type === 'transfer.offered' && t.peer === link.to.port) return finish(new Error(`offer of ${t.name} waits for the user at ${t.peer}: the sender is not trusted`));
      if (e.type === 'transfer.completed' && t.direction === 'in' && t.peer === link.to.port && pending.delete(t.name)) {
        done.set(t.name, t);
        if (pending.size === 0) finish(null);
      }
    };
    offs.push(link.to.events.on(watch));
    if (link.from.events !== link.to.events) offs.push(link.from.events.on(watch));
  });
}

export interface Timed {
  ms: number;
}

/** Verifies every received file, then deletes it so inboxes (and disk use) stay small. */
async function verifyAndClean(link: Link, files: readonly Payload[], done: Map<string, any>): Promise<void> {
  const queue = [...files];
  const worker = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const t = done.get(f.name);
      await verifyReceived(link.to.daemon, link.to.port, t?.savedAs ?? null, f);
      await link.to.daemon.api.deleteFile(link.to.port, t.savedAs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker));
}

/** JSON POST {to, paths}: timed from the request until the last file completed at the receiver. */
export async function sendPaths(link: Link, files: readonly Payload[], timeoutMs: number): Promise<Timed> {
  const completed = awaitCompleted(link, files.map((f) => f.name), timeoutMs);
  completed.catch(() => {}); // handled below; avoid an unhandled rejection if the POST throws first
  const path = `/api/peers/${link.from.port}/transfers`;
  const body = { to: [link.to.id], paths: files.map((f) => f.path) };
  const t0 = performance.now();
  // Started like C's upload, with one curl command, so that A does not skip the process
  // start that C pays (bash and curl: 30-45 ms on this VM, 1-2 % of a 1 GiB A).
  if ((await scriptClient()) === 'curl') {
    const res = await curlJson(`${link.from.daemon.base}${path}`, link.from.daemon.token, body);
    if (res.status !== 202) throw new ApiError(res.status, res.body, `POST ${path}`);
  } else await link.from.daemon.api.expect(202, 'POST', path, body);
  const done = await completed;
  const ms = performance.now() - t0;
  await verifyAndClean(link, files, done);
  return { ms };
}

/** Whether the daemon takes the multipart `size` field; learnt at the first upload. */
let sizeField: boolean | null = null;
export const uploadNotices: string[] = [];

/**
 * The client that starts timed transfers: curl, as the README's scripts use it, or
 * (without curl) the benchmark's own HTTP client and a lean Node uploader.
 */
let client: 'curl' | 'node' | null = null;
export async function scriptClient(): Promise<'curl' | 'node'> {
  // MESHDROP_BENCH_UPLOADER=node forces the Node client (to compare, or to test it).
  if (process.env.MESHDROP_BENCH_UPLOADER === 'node') client = 'node';
  client ??= await run('curl', ['--version']).then(() => 'curl' as const, () => 'node' as const);
  return client;
}

/** A multipart POST: its fields, in order, then the file part. */
export interface UploadRequest {
  url: string;
  token?: string;
  fields: ReadonlyArray<readonly [string, string]>;
}

export interface UploadResult {
  status: number;
  body: unknown;
  /** CPU seconds (user + system) the uploading client used. */
  clientCpu: number;
}

/** Uploads `file` with the client of this run (curl, or the Node client). */
export async function postUpload(req: UploadRequest, file: Payload): Promise<UploadResult> {
  return (await scriptClient()) === 'curl' ? curlMultipart(req, file) : postMultipart(req, file);
}

/**
 * Multipart upload (fields `to`, `size`, then `file`), streamed from disk, timed until
 * the file completed at the receiver. A daemon without the `size` field answers 400;
 * then the upload is retried without it (the refused attempt is not timed).
 */
export async function uploadFile(link: Link, file: Payload, timeoutMs: number): Promise<Timed & { withSize: boolean; clientCpu: number }> {
  for (;;) {
    const withSize = sizeField !== false;
    const completed = awaitCompleted(link, [file.name], timeoutMs);
    completed.catch(() => {});
    const t0 = performance.now();
    const res = await postUpload({
      url: `${link.from.daemon.base}/api/peers/${link.from.port}/transfers`,
      token: link.from.daemon.token,
      fields: [['to', link.to.id], ...(withSize ? [['size', String(file.size)] as const] : [])],
    }, file);
    if (res.status === 400 && withSize && /size/.test(JSON.stringify(res.body))) {
      sizeField = false;
      uploadNotices.push(`the daemon refused the multipart "size" field (${JSON.stringify(res.body)}); uploads were sent without it`);
      console.error(`  notice: ${uploadNotices.at(-1)}`);
      continue;
    }
    if (res.status !== 202) throw new ApiError(res.status, res.body, 'multipart POST /transfers');
    if (withSize) sizeField = true;
    const done = await completed;
    const ms = performance.now() - t0;
    await verifyAndClean(link, [file], done);
    return { ms, withSize, clientCpu: res.clientCpu };
  }
}

function run(cmd: string, args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })));
    child.stdin?.end(input ?? '');
  });
}

/** bash's `times` prints the shell's user and system time, then its children's: "0m0.056s 0m0.406s". */
function childrenCpu(stderr: string): number {
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
  if (!m) throw new Error(`no CPU times from bash in ${JSON.stringify(stderr.slice(-200))}`);
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

/** Runs curl with `args` under bash, whose `times` gives curl's CPU; answers status, JSON body and that CPU. */
async function curl(args: string[], input?: string): Promise<UploadResult> {
  const { stdout, stderr } = await run('bash', ['-c', 'curl "$@"; s=$?; times >&2; exit $s', 'curl', '-sS', '-w', '\n%{http_code}', ...args], input);
  const cut = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), body: text ? JSON.parse(text) : null, clientCpu: childrenCpu(stderr) };
}

/** `curl -F`, the way a user's script uploads (README "Scripting it"). */
function curlMultipart(req: UploadRequest, file: Payload): Promise<UploadResult> {
  return curl([
    ...(req.token ? ['-H', `authorization: Bearer ${req.token}`] : []),
    ...req.fields.flatMap(([name, value]) => ['-F', `${name}=${value}`]),
    '-F', `file=@${file.path};filename=${file.name};type=application/octet-stream`,
    req.url,
  ]);
}

/** A JSON POST with curl, as in the README's "Scripting it"; the body goes on stdin (1,000 paths can pass an argument's 128 KiB). */
function curlJson(url: string, token: string, body: unknown): Promise<UploadResult> {
  return curl(['-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '--data-binary', '@-', url], JSON.stringify(body));
}

/**
 * The same upload from Node, for machines without curl: two 1 MiB buffers read into in
 * turn (a fresh buffer per read costs the client a page fault per 4 KiB on this VM).
 * Its CPU is the benchmark process's own while it uploads (which also includes the
 * event clients' little work).
 */
function postMultipart(req: UploadRequest, file: Payload): Promise<UploadResult> {
  const cpu0 = process.cpuUsage();
  const boundary = `----meshdrop-bench-${Math.random().toString(16).slice(2)}`;
  const field = (name: string, value: string) => `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = Buffer.from(
    req.fields.map(([name, value]) => field(name, value)).join('') +
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL(req.url);
  return new Promise((resolve, reject) => {
    let refused = false;
    const post = request(url, {
      method: 'POST',
      headers: {
        ...(req.token ? { authorization: `Bearer ${req.token}` } : {}),
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': head.length + file.size + tail.length,
      },
    }, (res) => {
      // A refusal can come before the body is sent: stop streaming it, or the refused
      // upload would keep the daemon busy during the next, timed attempt.
      if (res.statusCode !== 202) refused = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        if (res.statusCode !== 202) post.destroy();
        const cpu = process.cpuUsage(cpu0);
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null, clientCpu: (cpu.user + cpu.system) / 1e6 });
      });
    });
    post.on('error', (err) => (refused ? undefined : reject(err)));
    const closed = new Promise<void>((r) => post.once('close', () => r()));
    post.write(head);
    const send = async () => {
      const fh = await open(file.path, 'r');
      try {
        const bufs = [Buffer.allocUnsafe(1024 * 1024), Buffer.allocUnsafe(1024 * 1024)];
        const free: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
        for (let pos = 0, k = 0; pos < file.size && !refused; k ^= 1) {
          await Promise.race([free[k], closed]);
          const { bytesRead } = await fh.read(bufs[k]!, 0, bufs[k]!.length, pos);
          if (bytesRead === 0) throw new Error(`${file.path} got shorter while it was uploaded`);
          pos += bytesRead;
          free[k] = new Promise<void>((r) => post.write(bufs[k]!.subarray(0, bytesRead), () => r()));
        }
        await Promise.race([Promise.all(free), closed]);
      } finally {
        await fh.close();
      }
      if (!refused) post.end(tail);
    };
    send().catch(reject);
  });
}

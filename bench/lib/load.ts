// HTTP load for G: C concurrent clients, each on its own keep-alive connection,
// issuing requests back to back; latency per request from send to the body's end.
// node:http with a keep-alive Agent rather than fetch: on this 2-core machine the
// client shares the CPU with the server, and fetch costs the client about twice as
// much per request, which would inflate both sides' latencies and flatten the ratio.

import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface LoadResult {
  latenciesMs: number[];
  seconds: number;
  bytes: number;
}

export async function runLoad(url: string, headers: Record<string, string>, clients: number, requests: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const target = new URL(url);
  const one = () => new Promise<number>((resolve, reject) => {
    http.get({ host: target.hostname, port: target.port, path: target.pathname, headers, agent }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => (res.statusCode === 200 && bytes > 0 ? resolve(bytes) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}, ${bytes} bytes`))));
    }).on('error', reject);
  });
  const phase = async (count: number, record: number[] | null) => {
    let issued = 0;
    let bytes = 0;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (issued < count) {
        issued++;
        const t = performance.now();
        bytes = await one();
        record?.push(performance.now() - t);
      }
    }));
    return bytes;
  };
  try {
    // Warm-up: opens the connections and warms both sides' JIT; not recorded.
    await phase(Math.max(clients * 10, 500), null);
    const latenciesMs: number[] = [];
    const t0 = performance.now();
    const bytes = await phase(requests, latenciesMs);
    return { latenciesMs, seconds: (performance.now() - t0) / 1000, bytes };
  } finally {
    agent.destroy();
  }
}

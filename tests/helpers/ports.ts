// Free TCP ports for peers (the API uses --port 0; peers need real port numbers).

import net from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 and 0.0.0.0. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '0.0.0.0', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    // Stay clear of the ephemeral range the kernel hands out to outgoing sockets, where
    // a port may be taken again by the time a peer binds it.
    if (port > 1024) return port;
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Holds a port with a plain TCP server, like another program would. */
export async function occupy(port: number, host = '0.0.0.0'): Promise<net.Server> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve());
  });
  return srv;
}

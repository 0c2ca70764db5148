// Baseline for G: a bare Fastify route answering GET /api/peers with a given JSON
// document (the daemon's own answer, captured by the benchmark). No auth, no schema:
// the floor of "Fastify serving this much JSON" on this machine. Prints {"port": N}.

import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const doc: unknown = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const app = Fastify({ logger: false });
app.get('/api/peers', async () => doc);
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }) + '\n');

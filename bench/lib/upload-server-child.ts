// Baseline for C: a bare Fastify route taking the same multipart upload as the
// daemon (fields, then the file part) through the same @fastify/multipart, and doing
// nothing with the bytes but counting them. No auth, no disk, no hash, no peer: what
// Node's HTTP stack, the multipart parser and the uploading client cost on this
// machine for the upload alone. Prints {"port": N}; answers {"bytes": N}.

import fastifyMultipart from '@fastify/multipart';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
await app.register(fastifyMultipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER } });
app.post('/upload', async (req, reply) => {
  let bytes = 0;
  for await (const part of req.parts()) {
    // The daemon reads its file part with a 'data' listener too (BlockWriter.from).
    if (part.type === 'file') {
      await new Promise<void>((resolve, reject) => {
        part.file.on('data', (piece: Buffer) => (bytes += piece.length));
        part.file.once('end', resolve);
        part.file.once('error', reject);
      });
    }
  }
  return reply.code(202).send({ bytes });
});
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }) + '\n');

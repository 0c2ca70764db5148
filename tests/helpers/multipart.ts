// A multipart upload (POST /api/peers/:port/transfers) whose body a test writes piece
// by piece (chunked encoding), so it can pause, pace or break off mid-file.

import { request, type ClientRequest, type IncomingMessage } from 'node:http';

export const BOUNDARY = 'meshdrop-test-boundary';

export const field = (name: string, value: string): string => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
export const fileHead = (filename: string): string =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
export const TAIL = `\r\n--${BOUNDARY}--\r\n`;

/** Opens the upload to `port` of daemon `d`; `response` settles with its status and JSON body. */
export function openUpload(d: { base: string; token: string }, port: number): { req: ClientRequest; response: Promise<{ status: number; body: any }> } {
  const req = request(new URL(`${d.base}/api/peers/${port}/transfers`), {
    method: 'POST',
    headers: { authorization: `Bearer ${d.token}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
  });
  const response = new Promise<{ status: number; body: any }>((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text || 'null') }));
    });
    req.on('error', reject);
  });
  return { req, response };
}

/** Writes a piece of the body; resolves once it is flushed to the socket. */
export const write = (req: ClientRequest, data: string | Buffer): Promise<void> =>
  new Promise<void>((resolve, reject) => req.write(data, (err) => (err ? reject(err) : resolve())));

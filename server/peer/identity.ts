// A peer's identity: an ECDSA P-256 key pair and a self-signed certificate.
// The peer id is the SHA-256 fingerprint of the certificate's DER bytes
// (lower-case hex), the same scheme Syncthing uses for device ids, so the TLS
// handshake itself proves who a peer is.

import { createHash, X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Certificates are identities, not a PKI: nobody checks expiry, so make them long-lived.
const CERT_YEARS = 20;

export interface Identity {
  id: string;
  certPem: string;
  keyPem: string;
}

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export async function createIdentity(label: string): Promise<Identity> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000); // tolerate small clock skew between machines
  const notAfter = new Date(notBefore.getTime() + CERT_YEARS * 365 * 24 * 3600 * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${label.replace(/[^A-Za-z0-9 ._-]/g, '')}, O=meshdrop`,
    notBefore,
    notAfter,
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  const certPem = cert.toString('pem') + '\n';
  return { id: fingerprintOfPem(certPem), certPem, keyPem };
}

export function fingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

export function fingerprintOfPem(certPem: string): string {
  return fingerprint(new X509Certificate(certPem).raw);
}

/** The short form shown in the UI: first 8 hex digits, grouped, upper case ("9F2C-41AB"). */
export function shortId(id: string): string {
  const head = id.slice(0, 8).toUpperCase();
  return `${head.slice(0, 4)}-${head.slice(4, 8)}`;
}

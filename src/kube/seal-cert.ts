// `--seal-cert PATH`: the Sealed Secrets controller's public certificate, checked before kubeseal (or the cluster) is asked.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/** A certificate PEM is a few KiB; anything much larger is the wrong file. */
const MAX_BYTES = 64 * 1024;

/**
 * Why `path` is not a usable sealing certificate, or undefined. The controller's certificate is public (kubeseal
 * --fetch-cert prints it), so it may be committed; a private key given by mistake is refused and never echoed.
 */
export function sealCertProblem(path: string, now = new Date()): string | undefined {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) return `${path} is not a file`;
    if (st.size > MAX_BYTES)
      return `${path} is ${st.size} bytes; a certificate is a few KiB (expected the PEM kubeseal --fetch-cert prints)`;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    return `${path} holds a private key; give the controller's public certificate (kubeseal --fetch-cert), and keep the key out of reach`;
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    return `${path} holds no PEM certificate (expected what kubeseal --fetch-cert prints)`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(text);
  } catch (err) {
    return `${path} is not a valid certificate (${(err as Error).message})`;
  }
  // Sealed Secrets encrypts the session key with RSA-OAEP: any other key type cannot seal.
  if (cert.publicKey.asymmetricKeyType !== 'rsa')
    return `${path} has a ${cert.publicKey.asymmetricKeyType ?? 'unknown'} key; Sealed Secrets certificates are RSA`;
  // kubeseal refuses an expired certificate too, but only after the cluster was read: fail before contact.
  if (new Date(cert.validTo).getTime() < now.getTime())
    return `${path} expired on ${new Date(cert.validTo).toISOString()}; fetch the controller's current one (kubeseal --fetch-cert)`;
  return undefined;
}

/**
 * What `tcpkit check` says about the TLS files, before anything is bound: every
 * certificate and key parses and each key is its certificate's (errors), the chain in
 * a certificate file is in order (each certificate issued by the next: error), each
 * SNI name is one its certificate covers (error), expiry (expired: error; within
 * EXPIRY_WARNING_DAYS: warning), and key files readable by group or others (warning).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { TlsSettings } from './settings.js';

/** A certificate expiring within this many days is a warning. Fixed at 14. */
export const EXPIRY_WARNING_DAYS = 14;

/** Problems (serve would refuse, or a client would) and warnings. */
export interface TlsCheck {
  errors: string[];
  warnings: string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Check the files of `s` (see the file comment). Never throws. */
export function checkTls(s: TlsSettings, now = Date.now()): TlsCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const pair = (label: string, certFile: string, keyFile: string, names: string[]) => {
    let text: string;
    let keyText: string;
    try {
      text = fs.readFileSync(certFile, 'utf8');
      keyText = fs.readFileSync(keyFile, 'utf8');
    } catch (err) {
      errors.push(`${label}: cannot read ${(err as NodeJS.ErrnoException).path ?? certFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    const blocks = text.match(PEM_CERT) ?? [];
    if (blocks.length === 0) {
      errors.push(`${label}: ${certFile} holds no PEM certificate`);
      return;
    }
    let chain: crypto.X509Certificate[];
    let key: crypto.KeyObject;
    try {
      chain = blocks.map((b) => new crypto.X509Certificate(b));
    } catch (err) {
      errors.push(`${label}: ${certFile}: ${(err as Error).message}`);
      return;
    }
    try {
      key = crypto.createPrivateKey(keyText);
    } catch (err) {
      errors.push(`${label}: ${keyFile} is not a private key in PEM: ${(err as Error).message}`);
      return;
    }
    const leaf = chain[0]!;
    if (!leaf.checkPrivateKey(key)) errors.push(`${label}: ${keyFile} is not the key of the first certificate in ${certFile} (${oneLine(leaf.subject)})`);
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i]!.checkIssued(chain[i + 1]!)) {
        errors.push(`${label}: ${certFile}: certificate ${i + 1} (${oneLine(chain[i]!.subject)}) is not issued by certificate ${i + 2} (${oneLine(chain[i + 1]!.subject)}): the chain must go from the server's certificate up to the CA`);
      }
    }
    chain.forEach((c, i) => {
      const to = Date.parse(c.validTo);
      const what = `${certFile}${chain.length > 1 ? ` certificate ${i + 1}` : ''} (${oneLine(c.subject)})`;
      if (to < now) errors.push(`${label}: ${what} expired on ${new Date(to).toISOString()}`);
      else if (to - now < EXPIRY_WARNING_DAYS * 86_400_000) warnings.push(`${label}: ${what} expires on ${new Date(to).toISOString()}, in less than ${EXPIRY_WARNING_DAYS} days`);
      if (Date.parse(c.validFrom) > now) errors.push(`${label}: ${what} is not valid before ${new Date(Date.parse(c.validFrom)).toISOString()}`);
    });
    for (const name of names) {
      // A wildcard entry is covered when a name of that form is: check one such name.
      const sample = name.startsWith('*.') ? `sni-check.${name.slice(2)}` : name;
      if (leaf.checkHost(sample) === undefined) errors.push(`${label}: ${certFile} does not cover the SNI name ${name} (its names: ${leaf.subjectAltName ?? oneLine(leaf.subject)})`);
    }
    try {
      const mode = fs.statSync(keyFile).mode;
      if (mode & 0o077) warnings.push(`${label}: ${keyFile} may be read by ${mode & 0o007 ? 'others' : 'its group'} (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
    } catch {
      // read above; gone since: the read error is the one to report
    }
  };
  pair('tlsCert', s.cert, s.key, []);
  s.sni.forEach((e, i) => pair(`tlsSni[${i}]`, e.cert, e.key, [e.name]));
  if (s.ca !== undefined) {
    try {
      const blocks = fs.readFileSync(s.ca, 'utf8').match(PEM_CERT) ?? [];
      if (blocks.length === 0) errors.push(`tlsCa: ${s.ca} holds no PEM certificate`);
      for (const b of blocks) new crypto.X509Certificate(b);
    } catch (err) {
      errors.push(`tlsCa: ${s.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return { errors, warnings };
}

function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(',');
}

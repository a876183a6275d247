// Key pairs for the test peers, made so that exporting them cannot hang the process.
//
// Node 20's `crypto.generateKeyPairSync` returns KeyObjects that share one mutex with the
// generation job; the job's finalizer takes that mutex. An export holds it, and a garbage
// collection inside the export (allocating the result) may run the finalizer on the same thread:
// the process then waits on itself forever (seen with gdb: the main thread in `~KeyGenJob` under
// `ExportJWKRsaKey`; in about one run in 15 of the `client_assertions` tests, which start
// server.js several times each, and every time in a loop of 400 keys). Asking the job for PEM
// text and making KeyObjects from it leaves the job holding a key no KeyObject shares.
// selftest-dpop.js uses it too, as a precaution: jose 6 generates with WebCrypto, a path not
// seen to hang.
import crypto from 'node:crypto';

/** `{ privateKey, publicKey }` as KeyObjects, for `crypto.generateKeyPairSync(type, options)`. */
export function keyPair(type, options) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync(type, {
    ...options,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return {
    privateKey: crypto.createPrivateKey(privateKey),
    publicKey: crypto.createPublicKey(publicKey),
  };
}

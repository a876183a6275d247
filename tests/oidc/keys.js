// Key pairs for the test peers, made so that exporting them cannot hang the process.
//
// Node 20's `crypto.generateKeyPairSync` (and `generateKeyPair`, which jose's uses) returns
// KeyObjects that share one mutex with the generation job; the job's finalizer takes that mutex.
// An export holds it, and a garbage collection inside the export (allocating the result) may
// run the finalizer on the same thread: the process then waits on itself forever (seen with gdb:
// the main thread in `~KeyGenJob` under `ExportJWKRsaKey`; about one start of server.js in 40
// under the test suite, and every time in a loop of 400 keys). Asking the job for PEM text and
// making KeyObjects from it leaves the job holding a key no KeyObject shares.
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

#!/usr/bin/env node
// A PEER.md peer around the pure-JavaScript `libsignal` 6.0.0 package (libsignal-node): X3DH
// version-3 sessions only, written and read with version byte 0x33 (it refuses a low nibble
// above 3, so it cannot read libsignal-client's 0x34 / 0x44). It has no sender keys and no
// usable safety numbers (its numeric_fingerprint.js is neither exported nor working), so those
// commands answer {"unsupported":true}. In-memory stores; sessions are kept serialized so that a
// failed decryption (which the library lets mutate the session object) leaves them unchanged.
import { createRequire } from 'node:module';
import {
  PeerError, unsupported, b64, unb64, str, int, bool, serve, parseArgs,
} from './common.mjs';

// The library logs with console.info/log, which would corrupt the JSON-lines output.
for (const k of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
  console[k] = (...a) => { if (process.env.PEER_DEBUG) process.stderr.write(`[libsignal] ${a.map(String).join(' ')}\n`); };
}

const require = createRequire(import.meta.url);
const libsignal = require('libsignal');
const { ProtocolAddress, SessionBuilder, SessionCipher, SessionRecord, keyhelper, curve } = libsignal;
const LIB_VERSION = require('libsignal/package.json').version;

parseArgs(process.argv.slice(2), new Map([['--no-kyber', 'flag']])); // Kyber is never used here.

// Identifiers arrive as "name" or "name.device" (the library is not consistent); trust is per name.
const nameOf = (id) => String(id).replace(/\.\d+$/, '');

class Storage {
  constructor(identity, regId) {
    this.identity = identity;
    this.regId = regId;
    this.sessions = new Map();
    this.identities = new Map();
    this.prekeys = new Map();
    this.signed = new Map();
  }
  async loadSession(id) {
    const s = this.sessions.get(id);
    return s ? SessionRecord.deserialize(JSON.parse(s)) : undefined;
  }
  async storeSession(id, record) { this.sessions.set(id, JSON.stringify(record.serialize())); }
  // Trust on first use per name: a changed key for a known name is refused.
  async isTrustedIdentity(id, key /* , direction */) {
    const n = nameOf(id);
    const old = this.identities.get(n);
    if (!old) {
      this.identities.set(n, Buffer.from(key));
      return true;
    }
    return old.equals(Buffer.from(key));
  }
  async loadPreKey(id) { return this.prekeys.get(Number(id)); }
  async removePreKey(id) { this.prekeys.delete(Number(id)); }
  async loadSignedPreKey(id) { return this.signed.get(Number(id)); }
  async getOurRegistrationId() { return this.regId; }
  async getOurIdentity() { return this.identity; }
}

let me = null;

function need() {
  if (!me) throw new PeerError('not initialised: send "init" first', 'NotInitialised');
  return me;
}

function addr(req, field) {
  const name = str(req, field);
  if (name.includes('.')) throw new PeerError(`field "${field}": libsignal-node refuses names with "."`);
  return new ProtocolAddress(name, int(req, 'device', 1, { min: 1, max: 0x7fffffff }));
}

function pub(obj, field) {
  const k = unb64(obj[field], field);
  if (k.length < 33 || k[0] !== 0x05) throw new PeerError(`field "${field}" is not a 0x05 public key`, 'InvalidKey');
  return k.subarray(0, 33);
}

const handlers = {
  info: async () => ({
    implementation: 'libsignal-node',
    version: LIB_VERSION,
    kyber_in_bundle: false,
    groups: false,
    displayable_fingerprint: false,
    scannable_fingerprint: false,
    pq_ratchet: false,
    // Extension (not in PEER.md): the library refuses a first byte whose low nibble is above 3.
    accepts_low_nibble_max: 3,
    // Extension: library defects the driver reports as skipped rather than passed. Decrypting a
    // whisper message tries every session of the record and ratchets each tried one forward
    // before its MAC check; the successful decryption then stores the record with those
    // mutations, which can close the current session's receiving chain ("Chain closed").
    // 'different-chain-limits': it refuses a counter more than 2000 ahead ("Over 2000 messages
    // into the future!") where libsignal allows 25000, and keeps every skipped key (no 2000 cap).
    known_defects: ['trial-decryption-mutates-sessions', 'different-chain-limits'],
  }),

  init: async (req) => {
    const name = str(req, 'name');
    if (name.includes('.')) throw new PeerError('libsignal-node refuses names with "."');
    const device = int(req, 'device', 1, { min: 1, max: 0x7fffffff });
    const regId = int(req, 'registration_id', undefined, { min: 1, max: 0x3fff });
    if (bool(req, 'kyber', false)) throw unsupported('libsignal-node has no Kyber');
    const identity = keyhelper.generateIdentityKeyPair();
    const storage = new Storage(identity, regId);
    const spk = keyhelper.generateSignedPreKey(identity, 1);
    storage.signed.set(1, spk.keyPair);
    me = { name, device, regId, identity, storage, spk, nextPreKeyId: 1 };
    return { identity_key: b64(identity.pubKey), registration_id: regId };
  },

  bundle: async (req) => {
    const s = need();
    if (bool(req, 'kyber', false)) throw unsupported('libsignal-node has no Kyber');
    const out = {
      registration_id: s.regId,
      device_id: s.device,
      identity_key: b64(s.identity.pubKey),
      signed_prekey_id: s.spk.keyId,
      signed_prekey: b64(s.spk.keyPair.pubKey),
      signed_prekey_signature: b64(s.spk.signature),
    };
    if (!bool(req, 'no_prekey', false)) {
      const pk = keyhelper.generatePreKey(s.nextPreKeyId++);
      s.storage.prekeys.set(pk.keyId, pk.keyPair);
      out.prekey_id = pk.keyId;
      out.prekey = b64(pk.keyPair.pubKey);
    }
    return out;
  },

  process_bundle: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const b = req.bundle;
    if (b === null || typeof b !== 'object') throw new PeerError('field "bundle" must be an object');
    const identityKey = pub(b, 'identity_key');
    const signedPreKey = pub(b, 'signed_prekey');
    const signature = unb64(b.signed_prekey_signature, 'signed_prekey_signature');
    // The library skips this check (verifySignature(..., isInit = true)); PEER.md requires it.
    if (signature.length !== 64 || !curve.verifySignature(identityKey, signedPreKey, signature, false)) {
      throw new PeerError('signed prekey signature does not verify', 'InvalidSignature');
    }
    const device = {
      registrationId: int(b, 'registration_id'),
      identityKey,
      signedPreKey: { keyId: int(b, 'signed_prekey_id'), publicKey: signedPreKey, signature },
    };
    if (b.prekey !== undefined && b.prekey !== null) {
      device.preKey = { keyId: int(b, 'prekey_id', undefined, { min: 1 }), publicKey: pub(b, 'prekey') };
    }
    // Kyber fields, if any, are ignored: this library only does X3DH.
    await new SessionBuilder(s.storage, a).initOutgoing(device);
    return { ok: true };
  },

  encrypt: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const m = await new SessionCipher(s.storage, a).encrypt(unb64(req.plaintext, 'plaintext'));
    const type = m.type === 3 ? 'prekey' : m.type === 1 ? 'whisper' : null;
    if (!type) throw new PeerError(`unexpected ciphertext type ${m.type}`, 'Internal');
    return { type, body: b64(Buffer.from(m.body)) };
  },

  decrypt: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const body = unb64(req.body, 'body');
    if (body.length === 0) throw new PeerError('empty body', 'InvalidMessage');
    const cipher = new SessionCipher(s.storage, a);
    let pt;
    if (req.type === 'prekey') pt = await cipher.decryptPreKeyWhisperMessage(body);
    else if (req.type === 'whisper') pt = await cipher.decryptWhisperMessage(body);
    else throw new PeerError('field "type" must be "prekey" or "whisper"');
    return { plaintext: b64(pt) };
  },

  skdm: async () => { throw unsupported('libsignal-node has no sender keys'); },
  process_skdm: async () => { throw unsupported('libsignal-node has no sender keys'); },
  group_encrypt: async () => { throw unsupported('libsignal-node has no sender keys'); },
  group_decrypt: async () => { throw unsupported('libsignal-node has no sender keys'); },
  fingerprint: async () => { throw unsupported('libsignal-node exports no safety-number API'); },

  session_info: async (req) => {
    const s = need();
    const rec = await s.storage.loadSession(addr(req, 'peer').toString());
    if (!rec) return { exists: false, has_current_state: false, session_version: 0 };
    const open = rec.haveOpenSession();
    return { exists: true, has_current_state: open, session_version: open ? 3 : 0 };
  },

  archive_session: async (req) => {
    const s = need();
    await new SessionCipher(s.storage, addr(req, 'peer')).closeOpenSession();
    return { ok: true };
  },
};

serve(async (req) => {
  const h = typeof req.cmd === 'string' && Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : null;
  if (!h) throw unsupported(`unknown command ${JSON.stringify(req.cmd)}`);
  return h(req);
}, (e) => (e && e.name && e.name !== 'Error' ? e.name : 'Error'));

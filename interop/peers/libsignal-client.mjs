#!/usr/bin/env node
// A PEER.md peer around @signalapp/libsignal-client 0.72.1 (Signal's own library; pre-SPQR, so
// PQXDH sessions are version 4 without pq_ratchet). In-memory stores; state dies with the process.
// Flags: --no-kyber  bundles carry no Kyber prekey and incoming bundles are used without theirs,
//                    so sessions are X3DH, version 3 (byte 0x34).
import { createRequire } from 'node:module';
import {
  PeerError, unsupported, b64, unb64, str, int, bool, encodeId, protoFields, serve, parseArgs,
} from './common.mjs';

const require = createRequire(import.meta.url);
const SignalClient = require('@signalapp/libsignal-client');
const {
  ProtocolAddress, PublicKey, IdentityKeyPair, PrivateKey, PreKeyRecord, SignedPreKeyRecord,
  KyberPreKeyRecord, KEMKeyPair, KEMPublicKey, PreKeyBundle, SessionRecord, SenderKeyRecord,
  SignalMessage, PreKeySignalMessage, SenderKeyDistributionMessage, CiphertextMessageType,
  Fingerprint, ScannableFingerprint, IdentityChange, ErrorCode,
} = SignalClient;

const LIB_VERSION = require('@signalapp/libsignal-client/package.json').version;
const args = parseArgs(process.argv.slice(2), new Map([['--no-kyber', 'flag']]));
const KYBER_DEFAULT = !args['--no-kyber'];

const key = (addr) => `${addr.name()}.${addr.deviceId()}`;

class Sessions extends SignalClient.SessionStore {
  constructor() { super(); this.m = new Map(); }
  async saveSession(addr, record) { this.m.set(key(addr), record.serialize()); }
  async getSession(addr) {
    const s = this.m.get(key(addr));
    return s ? SessionRecord.deserialize(s) : null;
  }
  async getExistingSessions(addrs) {
    return addrs.map((a) => {
      const s = this.m.get(key(a));
      if (!s) throw new Error(`no session for ${key(a)}`);
      return SessionRecord.deserialize(s);
    });
  }
}

class Identities extends SignalClient.IdentityKeyStore {
  constructor(pair, regId) { super(); this.pair = pair; this.regId = regId; this.m = new Map(); }
  async getIdentityKey() { return this.pair.privateKey; }
  async getLocalRegistrationId() { return this.regId; }
  async saveIdentity(addr, pub) {
    const old = this.m.get(key(addr));
    this.m.set(key(addr), pub.serialize());
    return old && !old.equals(pub.serialize()) ? IdentityChange.ReplacedExisting : IdentityChange.NewOrUnchanged;
  }
  // Trust on first use per address: a changed key for a known address is refused.
  async isTrustedIdentity(addr, pub /* , direction */) {
    const old = this.m.get(key(addr));
    return !old || old.equals(pub.serialize());
  }
  async getIdentity(addr) {
    const k = this.m.get(key(addr));
    return k ? PublicKey.deserialize(k) : null;
  }
}

class PreKeys extends SignalClient.PreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async savePreKey(id, r) { this.m.set(id, r.serialize()); }
  async getPreKey(id) {
    const r = this.m.get(id);
    if (!r) throw new Error(`no one-time prekey ${id}`);
    return PreKeyRecord.deserialize(r);
  }
  async removePreKey(id) { this.m.delete(id); }
}

class SignedPreKeys extends SignalClient.SignedPreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveSignedPreKey(id, r) { this.m.set(id, r.serialize()); }
  async getSignedPreKey(id) {
    const r = this.m.get(id);
    if (!r) throw new Error(`no signed prekey ${id}`);
    return SignedPreKeyRecord.deserialize(r);
  }
}

class KyberPreKeys extends SignalClient.KyberPreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveKyberPreKey(id, r) { this.m.set(id, r.serialize()); }
  async getKyberPreKey(id) {
    const r = this.m.get(id);
    if (!r) throw new Error(`no kyber prekey ${id}`);
    return KyberPreKeyRecord.deserialize(r);
  }
  async markKyberPreKeyUsed(/* id */) { /* last-resort key: kept */ }
}

class SenderKeys extends SignalClient.SenderKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveSenderKey(addr, dist, r) { this.m.set(`${key(addr)}/${dist}`, r.serialize()); }
  async getSenderKey(addr, dist) {
    const r = this.m.get(`${key(addr)}/${dist}`);
    return r ? SenderKeyRecord.deserialize(r) : null;
  }
}

let me = null; // set by init

function need() {
  if (!me) throw new PeerError('not initialised: send "init" first', 'NotInitialised');
  return me;
}

function addr(req, field) {
  return ProtocolAddress.new(str(req, field), int(req, 'device', 1, { min: 1, max: 0x7fffffff }));
}

function pub(req, field) {
  try {
    return PublicKey.deserialize(unb64(req[field], field));
  } catch (e) {
    if (e instanceof PeerError) throw e;
    throw new PeerError(`field "${field}": ${e.message}`, 'InvalidKey');
  }
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
function group(req) {
  const g = str(req, 'group');
  if (!UUID_RE.test(g)) throw new PeerError('field "group" must be a UUID string');
  return g.toLowerCase();
}

/** session_version of the current state, from the serialized record (RecordStructure.1.1). */
function currentVersion(record) {
  for (const [f, wt, v] of protoFields(record.serialize())) {
    if (f === 1 && wt === 2) {
      for (const [g, wt2, w] of protoFields(v)) if (g === 1 && wt2 === 0) return w;
      return 0;
    }
  }
  return 0;
}

const handlers = {
  info: async () => ({
    implementation: 'libsignal-client',
    version: LIB_VERSION,
    kyber_in_bundle: me ? me.kyber : KYBER_DEFAULT,
    groups: true,
    displayable_fingerprint: true,
    scannable_fingerprint: true,
    pq_ratchet: false,
  }),

  init: async (req) => {
    const name = str(req, 'name');
    const device = int(req, 'device', 1, { min: 1, max: 0x7fffffff });
    const regId = int(req, 'registration_id', undefined, { min: 1, max: 0x3fff });
    const kyber = bool(req, 'kyber', KYBER_DEFAULT);
    const pair = IdentityKeyPair.generate();
    const s = {
      name, device, regId, kyber, pair,
      self: ProtocolAddress.new(name, device),
      sessions: new Sessions(),
      identities: new Identities(pair, regId),
      prekeys: new PreKeys(),
      signed: new SignedPreKeys(),
      kyberKeys: new KyberPreKeys(),
      senderKeys: new SenderKeys(),
      nextPreKeyId: 1,
    };
    const spk = PrivateKey.generate();
    const spkPub = spk.getPublicKey();
    await s.signed.saveSignedPreKey(1, SignedPreKeyRecord.new(1, Date.now(), spkPub, spk,
      pair.privateKey.sign(spkPub.serialize())));
    const kem = KEMKeyPair.generate();
    await s.kyberKeys.saveKyberPreKey(1, KyberPreKeyRecord.new(1, Date.now(), kem,
      pair.privateKey.sign(kem.getPublicKey().serialize())));
    me = s;
    return { identity_key: b64(pair.publicKey.serialize()), registration_id: regId };
  },

  bundle: async (req) => {
    const s = need();
    const kyber = bool(req, 'kyber', s.kyber);
    const out = {
      registration_id: s.regId,
      device_id: s.device,
      identity_key: b64(s.pair.publicKey.serialize()),
    };
    const spk = await s.signed.getSignedPreKey(1);
    out.signed_prekey_id = 1;
    out.signed_prekey = b64(spk.publicKey().serialize());
    out.signed_prekey_signature = b64(spk.signature());
    if (!bool(req, 'no_prekey', false)) {
      const id = s.nextPreKeyId++;
      const k = PrivateKey.generate();
      await s.prekeys.savePreKey(id, PreKeyRecord.new(id, k.getPublicKey(), k));
      out.prekey_id = id;
      out.prekey = b64(k.getPublicKey().serialize());
    }
    if (kyber) {
      const kr = await s.kyberKeys.getKyberPreKey(1);
      out.kyber_prekey_id = 1;
      out.kyber_prekey = b64(kr.publicKey().serialize());
      out.kyber_prekey_signature = b64(kr.signature());
    }
    return out;
  },

  process_bundle: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const b = req.bundle;
    if (b === null || typeof b !== 'object') throw new PeerError('field "bundle" must be an object');
    const hasPre = b.prekey !== undefined && b.prekey !== null;
    const hasKyber = s.kyber && b.kyber_prekey !== undefined && b.kyber_prekey !== null;
    const bundle = PreKeyBundle.new(
      int(b, 'registration_id'),
      int(b, 'device_id', 1),
      hasPre ? int(b, 'prekey_id') : null,
      hasPre ? pub(b, 'prekey') : null,
      int(b, 'signed_prekey_id'),
      pub(b, 'signed_prekey'),
      unb64(b.signed_prekey_signature, 'signed_prekey_signature'),
      pub(b, 'identity_key'),
      hasKyber ? int(b, 'kyber_prekey_id') : null,
      hasKyber ? KEMPublicKey.deserialize(unb64(b.kyber_prekey, 'kyber_prekey')) : null,
      hasKyber ? unb64(b.kyber_prekey_signature, 'kyber_prekey_signature') : null,
    );
    await SignalClient.processPreKeyBundle(bundle, a, s.sessions, s.identities);
    return { ok: true };
  },

  encrypt: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const m = await SignalClient.signalEncrypt(unb64(req.plaintext, 'plaintext'), a, s.sessions, s.identities);
    const t = m.type();
    const type = t === CiphertextMessageType.PreKey ? 'prekey' : t === CiphertextMessageType.Whisper ? 'whisper' : null;
    if (!type) throw new PeerError(`unexpected ciphertext type ${t}`, 'Internal');
    return { type, body: b64(m.serialize()) };
  },

  decrypt: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const body = unb64(req.body, 'body');
    let pt;
    if (req.type === 'prekey') {
      pt = await SignalClient.signalDecryptPreKey(PreKeySignalMessage.deserialize(body), a,
        s.sessions, s.identities, s.prekeys, s.signed, s.kyberKeys);
    } else if (req.type === 'whisper') {
      pt = await SignalClient.signalDecrypt(SignalMessage.deserialize(body), a, s.sessions, s.identities);
    } else {
      throw new PeerError('field "type" must be "prekey" or "whisper"');
    }
    return { plaintext: b64(pt) };
  },

  skdm: async (req) => {
    const s = need();
    const m = await SenderKeyDistributionMessage.create(s.self, group(req), s.senderKeys);
    return { body: b64(m.serialize()), chain_id: m.chainId(), iteration: m.iteration() };
  },

  process_skdm: async (req) => {
    const s = need();
    const a = addr(req, 'sender');
    const m = SenderKeyDistributionMessage.deserialize(unb64(req.body, 'body'));
    await SignalClient.processSenderKeyDistributionMessage(a, m, s.senderKeys);
    return { ok: true };
  },

  group_encrypt: async (req) => {
    const s = need();
    const m = await SignalClient.groupEncrypt(s.self, group(req), s.senderKeys, unb64(req.plaintext, 'plaintext'));
    if (m.type() !== CiphertextMessageType.SenderKey) throw new PeerError(`unexpected type ${m.type()}`, 'Internal');
    return { type: 'senderkey', body: b64(m.serialize()) };
  },

  group_decrypt: async (req) => {
    const s = need();
    const a = addr(req, 'sender');
    const pt = await SignalClient.groupDecrypt(a, s.senderKeys, unb64(req.body, 'body'));
    return { plaintext: b64(pt) };
  },

  fingerprint: async (req) => {
    const s = need();
    const enc = req.id_encoding;
    const localId = encodeId(str(req, 'local_id'), enc, 'local_id');
    const peerId = encodeId(str(req, 'peer_id'), enc, 'peer_id');
    const iterations = int(req, 'iterations', 5200, { min: 1, max: 1000000 });
    const version = int(req, 'version', 2, { min: 0, max: 0xffffffff });
    const localKey = req.local_identity !== undefined ? pub(req, 'local_identity') : s.pair.publicKey;
    const fp = Fingerprint.new(iterations, version, localId, localKey, peerId, pub(req, 'peer_identity'));
    const scannable = fp.scannableFingerprint().toBuffer();
    const out = { displayable: fp.displayableFingerprint().toString(), scannable: b64(scannable) };
    if (req.compare_with !== undefined) {
      const other = unb64(req.compare_with, 'compare_with');
      out.matches = ScannableFingerprint._fromBuffer(scannable).compare(ScannableFingerprint._fromBuffer(other));
    }
    return out;
  },

  session_info: async (req) => {
    const s = need();
    const rec = await s.sessions.getSession(addr(req, 'peer'));
    if (!rec) return { exists: false, has_current_state: false, session_version: 0 };
    return { exists: true, has_current_state: rec.hasCurrentState(), session_version: currentVersion(rec) };
  },

  archive_session: async (req) => {
    const s = need();
    const a = addr(req, 'peer');
    const rec = await s.sessions.getSession(a);
    if (rec) {
      rec.archiveCurrentState();
      await s.sessions.saveSession(a, rec);
    }
    return { ok: true };
  },
};

serve(async (req) => {
  const h = typeof req.cmd === 'string' && Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : null;
  if (!h) throw unsupported(`unknown command ${JSON.stringify(req.cmd)}`);
  return h(req);
}, (e) => {
  if (e && typeof e.code === 'number' && ErrorCode[e.code]) return ErrorCode[e.code];
  return (e && e.name) || 'Error';
});

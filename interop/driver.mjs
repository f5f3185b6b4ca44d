#!/usr/bin/env node
// Scenario driver: spawns two or three PEER.md peers (any implementation, given as command lines)
// and checks that they hold Signal-protocol conversations with each other.
//
//   node interop/driver.mjs --a "CMD" --b "CMD" [--c "CMD"] [--scenario all|LIST] [--seed N]
//        [--messages N] [--plain-names] [--verbose]
//
// Scenarios: requests, setup, reorder, replay, replaced, group (needs --c), fingerprint, limits. One line per check
// ("ok", "FAIL", "skip"), then "K skipped" and, alone on the last line, "N passed, M failed".
// Exit status 1 if any check failed, 2 on bad usage.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { protoFields } from './peers/common.mjs';

// ---------------------------------------------------------------- arguments

const USAGE = 'usage: driver.mjs --a CMD --b CMD [--c CMD] [--scenario all|requests,setup,reorder,replay,replaced,group,fingerprint,limits] [--seed N] [--messages N] [--plain-names] [--verbose]';
const SCENARIOS = ['requests', 'setup', 'reorder', 'replay', 'replaced', 'group', 'fingerprint', 'limits'];

function parseArgs(argv) {
  const o = { scenario: 'all', seed: 42, messages: 100, plainNames: false, verbose: false, timeout: 60000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--a' || a === '--b' || a === '--c') o[a.slice(2)] = val();
    else if (a === '--scenario') o.scenario = val();
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--messages') o.messages = Number(val());
    else if (a === '--timeout') o.timeout = Number(val()) * 1000;
    else if (a === '--plain-names') o.plainNames = true;
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else usage(`unknown argument ${a}`);
  }
  if (!o.a || !o.b) usage('--a and --b are required');
  if (!Number.isInteger(o.seed) || o.seed < 0) usage('--seed must be a non-negative integer');
  if (!Number.isInteger(o.messages) || o.messages < 1) usage('--messages must be a positive integer');
  o.scenarios = o.scenario === 'all' ? SCENARIOS : o.scenario.split(',').map((s) => s.trim());
  for (const s of o.scenarios) if (!SCENARIOS.includes(s)) usage(`unknown scenario ${s}`);
  return o;
}

function usage(msg) {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------- seeded PRNG (mulberry32)

let prngState = opts.seed >>> 0;
function rand() {
  prngState = (prngState + 0x6d2b79f5) >>> 0;
  let t = prngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
const randBytes = (n) => Buffer.from(Array.from({ length: n }, () => randInt(0, 255)));
function shuffle(arr) {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randInt(0, i);
    [arr[i], arr[j]] = [arr[j], arr[i]];
  }
  return arr;
}
function randUuid() {
  const b = randBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
/** A plaintext that names its origin, with a random tail of 0..300 bytes. */
function plaintext(tag) {
  return Buffer.concat([Buffer.from(`${tag}|`), randBytes(randInt(0, 300))]);
}

// ---------------------------------------------------------------- reporting

const tally = { passed: 0, failed: 0, skipped: 0 };
let context = '';

function report(kind, desc, detail) {
  const line = `${kind.padEnd(4)} ${context ? `[${context}] ` : ''}${desc}${detail ? ` — ${detail}` : ''}`;
  console.log(line);
}
function pass(desc, detail) { tally.passed++; report('ok', desc, opts.verbose ? detail : undefined); return true; }
function fail(desc, detail) { tally.failed++; report('FAIL', desc, detail); return false; }
function skip(desc, reason) { tally.skipped++; report('skip', desc, reason); return false; }
function check(cond, desc, detail) { return cond ? pass(desc, detail) : fail(desc, detail); }
function note(msg) { if (opts.verbose) console.log(`     ${context ? `[${context}] ` : ''}${msg}`); }

/** Thrown when a peer answers {"unsupported":true}: the step is reported as skipped. */
class Unsupported extends Error {}
/** Thrown by a scenario to stop with a reason already reported. */
class Abort extends Error {}

// ---------------------------------------------------------------- peer processes

const exitCodes = [];

class Peer {
  constructor(role, cmd) {
    this.role = role;
    this.cmd = cmd;
    this.pending = [];
    this.stderr = '';
    this.dead = null;
    this.child = spawn(cmd, { shell: true, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.dead = `exited with ${code ?? signal}`;
        for (const p of this.pending.splice(0)) p.reject(new Error(`peer ${role} ${this.dead}; stderr: ${this.tail()}`));
        resolve(code ?? signal);
      });
    });
    this.child.on('error', (e) => { this.dead = e.message; });
    this.child.stdin.on('error', () => {});
    this.child.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const p = this.pending.shift();
      if (!p) {
        this.stray = line;
        return;
      }
      clearTimeout(p.timer);
      try {
        p.resolve(JSON.parse(line));
      } catch {
        p.reject(new Error(`peer ${role} answered non-JSON: ${line.slice(0, 200)}`));
      }
    });
  }

  tail() { return this.stderr.trim().split('\n').slice(-5).join(' | ').slice(-600); }

  request(obj) { return this.requestLine(JSON.stringify(obj), obj.cmd); }

  requestLine(line, what) {
    if (this.dead) return Promise.reject(new Error(`peer ${this.role} ${this.dead}; stderr: ${this.tail()}`));
    return new Promise((resolve, reject) => {
      const p = { resolve, reject };
      p.timer = setTimeout(() => {
        reject(new Error(`peer ${this.role} did not answer ${what} within ${opts.timeout / 1000}s`));
        this.kill();
      }, opts.timeout);
      this.pending.push(p);
      this.child.stdin.write(`${line}\n`);
    });
  }

  kill() {
    try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }

  async close() {
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), 10000);
    const code = await this.exited;
    clearTimeout(timer);
    exitCodes.push({ role: this.role, code, cmd: this.cmd });
    return code;
  }
}

/** One party: a peer process, initialised under a name. */
class Party {
  constructor(role, peer, info) {
    this.role = role.toUpperCase();
    this.peer = peer;
    this.info = info;
  }

  get impl() { return `${this.info.implementation ?? '?'}${this.info.kyber_in_bundle ? '' : '/no-kyber'}`; }

  /** Sends a request; returns the reply, throws Unsupported or an Error carrying the reply. */
  async call(req) {
    const r = await this.peer.request(req);
    if (r && r.unsupported) throw new Unsupported(`${this.role} (${this.impl}) does not support ${req.cmd}: ${r.error ?? ''}`);
    if (r && r.error !== undefined) {
      const e = new Error(`${this.role} ${req.cmd}: ${r.name ?? ''}: ${r.error}`);
      e.reply = r;
      throw e;
    }
    return r;
  }

  /** Sends a request that must be refused; returns the error reply or null if it was accepted. */
  async refused(req) {
    const r = await this.peer.request(req);
    if (r && r.unsupported) throw new Unsupported(`${this.role} does not support ${req.cmd}`);
    return r && r.error !== undefined ? r : null;
  }

  /** Whether this party's library can parse a message starting with `byte` (info extension). */
  canRead(byte) {
    const max = this.info.accepts_low_nibble_max;
    return !(Number.isInteger(max) && (byte & 0x0f) > max);
  }

  encrypt(to, pt) { return this.call({ cmd: 'encrypt', peer: to.name, device: to.device, plaintext: pt.toString('base64') }); }

  decrypt(from, msg) {
    return this.call({ cmd: 'decrypt', peer: from.name, device: from.device, type: msg.type, body: msg.body });
  }
}

const roleCmd = { A: opts.a, B: opts.b, C: opts.c };
let liveParties = [];

/** Spawns fresh processes for the roles and initialises them. */
let reportInit = false;
async function fresh(...roles) {
  const parties = [];
  for (const role of roles) {
    const peer = new Peer(role, roleCmd[role]);
    liveParties.push(peer);
    const info = await peer.request({ cmd: 'info' });
    if (info.error !== undefined) throw new Error(`${role} info: ${info.error}`);
    const p = new Party(role, peer, info);
    p.name = opts.plainNames ? `${role.toLowerCase()}${randInt(1000, 9999)}` : randUuid();
    p.device = randInt(1, 3); // PEER.md's device defaults to 1; other ids are exercised too
    p.regId = randInt(1, 16380);
    const r = await p.call({ cmd: 'init', name: p.name, device: p.device, registration_id: p.regId });
    p.identity = r.identity_key;
    const good = typeof r.identity_key === 'string' && Buffer.from(r.identity_key, 'base64').length === 33
      && Buffer.from(r.identity_key, 'base64')[0] === 0x05 && r.registration_id === p.regId;
    if (!good && !reportInit) throw new Error(`${role} init: bad reply ${JSON.stringify(r)}`);
    if (reportInit) check(typeof r.identity_key === 'string' && Buffer.from(r.identity_key, 'base64').length === 33
      && Buffer.from(r.identity_key, 'base64')[0] === 0x05 && r.registration_id === p.regId,
      `${role} init returns a 33-byte 0x05 identity key and the registration id`, JSON.stringify(r));
    parties.push(p);
  }
  return parties;
}

async function closeAll() {
  const ps = liveParties;
  liveParties = [];
  await Promise.all(ps.map((p) => p.close()));
}

// ---------------------------------------------------------------- wire helpers

const hex = (b) => Buffer.from(b).toString('hex');
const byteHex = (n) => `0x${n.toString(16).padStart(2, '0')}`;

function fieldMap(buf) {
  const m = new Map();
  for (const [f, , v] of protoFields(buf)) {
    if (!m.has(f)) m.set(f, []);
    m.get(f).push(v);
  }
  return m;
}

/** The serialized SignalMessage inside a message body, with its offset in the body. */
function innerSignalMessage(type, body) {
  if (type === 'whisper') return { sm: body, offset: 0 };
  const f = protoFields(body.subarray(1)).find(([n, wt]) => n === 4 && wt === 2);
  if (!f) throw new Error('PreKeySignalMessage without field 4');
  return { sm: f[2], offset: f[2].byteOffset - body.byteOffset };
}

/** Copies of a message with one bit flipped in (a) its ciphertext, (b) its MAC. */
function tamperings(msg) {
  const body = Buffer.from(msg.body, 'base64');
  const { sm, offset } = innerSignalMessage(msg.type, body);
  const proto = sm.subarray(1, sm.length - 8);
  const ct = protoFields(proto).find(([n, wt]) => n === 4 && wt === 2);
  const out = [];
  if (ct && ct[2].length > 0) {
    const b = Buffer.from(body);
    b[ct[2].byteOffset - body.byteOffset + ct[2].length - 1] ^= 0x01;
    out.push({ what: 'ciphertext bit', msg: { type: msg.type, body: b.toString('base64') } });
  }
  const b2 = Buffer.from(body);
  b2[offset + sm.length - 1] ^= 0x80;
  out.push({ what: 'MAC bit', msg: { type: msg.type, body: b2.toString('base64') } });
  return out;
}

/** Structural checks of a PreKeySignalMessage against the bundle it was built from. */
function prekeyLayout(body, bundle, sender, version) {
  const problems = [];
  const f = fieldMap(body.subarray(1));
  const one = (n) => (f.get(n) ?? [])[0];
  const order = protoFields(body.subarray(1)).map(([n]) => n);
  if (order.some((n, i) => i > 0 && n <= order[i - 1])) problems.push(`fields not ascending: ${order}`);
  if (body[0] >> 4 !== version) problems.push(`first byte ${byteHex(body[0])} for version ${version}`);
  if (bundle.prekey_id !== undefined && one(1) !== bundle.prekey_id) problems.push(`pre_key_id ${one(1)} != ${bundle.prekey_id}`);
  if (bundle.prekey_id === undefined && one(1) !== undefined) problems.push(`pre_key_id ${one(1)} present without one-time prekey`);
  if (!one(2) || one(2).length !== 33 || one(2)[0] !== 5) problems.push('base_key not 33 bytes 0x05');
  if (!one(3) || one(3).toString('base64') !== sender.identity) problems.push('identity_key is not the sender identity');
  if (one(5) !== sender.regId) problems.push(`registration_id ${one(5)} != ${sender.regId}`);
  if (one(6) !== bundle.signed_prekey_id) problems.push(`signed_pre_key_id ${one(6)} != ${bundle.signed_prekey_id}`);
  if (version === 4) {
    if (one(7) !== bundle.kyber_prekey_id) problems.push(`kyber_pre_key_id ${one(7)} != ${bundle.kyber_prekey_id}`);
    if (!one(8) || one(8).length !== 1569 || one(8)[0] !== 0x08) problems.push(`kyber_ciphertext ${one(8)?.length} bytes`);
  } else if (one(7) !== undefined || one(8) !== undefined) problems.push('kyber fields in a version-3 message');
  const sm = one(4);
  if (!sm) problems.push('no inner message');
  else {
    if (sm[0] !== body[0]) problems.push(`inner first byte ${byteHex(sm[0])} != outer ${byteHex(body[0])}`);
    const inner = fieldMap(sm.subarray(1, sm.length - 8));
    const i1 = (n) => (inner.get(n) ?? [])[0];
    if (!i1(1) || i1(1).length !== 33) problems.push('inner ratchet_key not 33 bytes');
    if (i1(2) === undefined) problems.push('inner counter absent');
    if (!i1(4) || i1(4).length % 16 !== 0) problems.push('inner ciphertext not a multiple of 16');
  }
  return problems;
}

/** "fields 1:4 2:33B ..." of a PreKeySignalMessage and of its inner SignalMessage. */
function describeFields(body) {
  const d = (buf) => protoFields(buf).map(([n, wt, v]) => (wt === 0 ? `${n}=${v}` : `${n}:${v.length}B`)).join(' ');
  const inner = protoFields(body.subarray(1)).find(([n, wt]) => n === 4 && wt === 2);
  return `${byteHex(body[0])} [${d(body.subarray(1))}]${inner ? ` inner ${byteHex(inner[2][0])} [${d(inner[2].subarray(1, inner[2].length - 8))}] mac 8B` : ''}`;
}

function summary(msg) {
  const body = Buffer.from(msg.body, 'base64');
  return `${msg.type} ${body.length}B first ${byteHex(body[0])}`;
}

// ---------------------------------------------------------------- conversation helpers

/** X processes Y's bundle; returns the bundle. */
async function connect(X, Y, { prekey = true } = {}) {
  const bundle = await Y.call({ cmd: 'bundle', ...(prekey ? {} : { no_prekey: true }) });
  await X.call({ cmd: 'process_bundle', peer: Y.name, device: Y.device, bundle });
  return bundle;
}

/** X → Y, one message, must decrypt to the plaintext. Returns false (and reports) if not. */
async function roundOne(X, Y, desc, tag, defect) {
  // A failure that the receiver's library declares as a known defect (info.known_defects) is
  // reported as skipped, not passed.
  const known = defect && (Y.info.known_defects ?? []).includes(defect);
  const failOrKnown = (d, detail) => (known
    ? skip(d, `known defect of ${Y.role} (${Y.impl}): ${defect}; ${detail}`)
    : fail(d, detail));
  const pt = plaintext(tag);
  const m = await X.encrypt(Y, pt);
  const first = Buffer.from(m.body, 'base64')[0];
  if (!Y.canRead(first)) {
    skip(desc, `${Y.role} (${Y.impl}) cannot read first byte ${byteHex(first)} written by ${X.role} (${X.impl})`);
    return null;
  }
  try {
    const r = await Y.decrypt(X, m);
    if (r.plaintext === pt.toString('base64')) return pass(desc, summary(m)) && m;
    failOrKnown(desc, `${summary(m)}: wrong plaintext`);
    return false;
  } catch (e) {
    failOrKnown(desc, `${summary(m)}: ${e.message}`);
    return false;
  }
}

async function sessionInfo(X, Y) {
  return X.call({ cmd: 'session_info', peer: Y.name, device: Y.device });
}

// ---------------------------------------------------------------- scenarios

/** Session setup with and without one-time prekey, X initiating. */
async function scenarioSetup(xr, yr, prekey) {
  const [X, Y] = await fresh(xr, yr);
  const bundle = await Y.call({ cmd: 'bundle', ...(prekey ? {} : { no_prekey: true }) });
  const hasKyber = bundle.kyber_prekey !== undefined;
  check(hasKyber === !!Y.info.kyber_in_bundle && (bundle.prekey !== undefined) === prekey
    && bundle.identity_key === Y.identity && bundle.registration_id === Y.regId,
  `${Y.role} bundle fields (prekey ${prekey}, kyber ${hasKyber})`,
  Object.keys(bundle).join(','));

  // A bundle with a broken signature is refused.
  const badSig = Buffer.from(bundle.signed_prekey_signature, 'base64');
  badSig[5] ^= 0x04;
  check(await X.refused({ cmd: 'process_bundle', peer: Y.name, device: Y.device,
    bundle: { ...bundle, signed_prekey_signature: badSig.toString('base64') } }) !== null,
  `${X.role} refuses ${Y.role}'s bundle with a bit flipped in the signed-prekey signature`);
  if (hasKyber && X.info.kyber_in_bundle) {
    const badK = Buffer.from(bundle.kyber_prekey_signature, 'base64');
    badK[9] ^= 0x10;
    check(await X.refused({ cmd: 'process_bundle', peer: Y.name, device: Y.device,
      bundle: { ...bundle, kyber_prekey_signature: badK.toString('base64') } }) !== null,
    `${X.role} refuses ${Y.role}'s bundle with a bit flipped in the Kyber-prekey signature`);
  }

  await X.call({ cmd: 'process_bundle', peer: Y.name, device: Y.device, bundle });
  if (prekey) {
    // Trust on first use: a validly signed bundle under Y's name with another identity is refused.
    const [Z] = await fresh(yr);
    const other = await Z.call({ cmd: 'bundle' });
    const r = await X.refused({ cmd: 'process_bundle', peer: Y.name, device: Y.device, bundle: other });
    check(r !== null, `${X.role} refuses a bundle for ${Y.role}'s address with a changed identity key`, r ? `${r.name}: ${r.error}` : 'accepted');
  }

  const xi = await sessionInfo(X, Y);
  const v = xi.session_version;
  const expected = !hasKyber ? [3] : X.info.kyber_in_bundle ? [4] : [3, 4];
  check(xi.exists && xi.has_current_state && expected.includes(v),
    `${X.role} session after processing the bundle: version ${v} (expected ${expected.join(' or ')})`, JSON.stringify(xi));

  const pt = plaintext(`${X.role}->${Y.role} first`);
  const m1 = await X.encrypt(Y, pt);
  const body = Buffer.from(m1.body, 'base64');
  check(m1.type === 'prekey', `${X.role}'s first message is a PreKey message`, summary(m1));
  const okBytes = v === 4 ? [0x44] : [0x34, 0x33];
  check(okBytes.includes(body[0]), `${X.role}'s first byte ${byteHex(body[0])} fits version ${v}`);
  const problems = m1.type === 'prekey' ? prekeyLayout(body, bundle, X, v) : ['not a prekey message'];
  check(problems.length === 0, `${X.role}'s PreKey message layout (ids, keys, kyber fields, inner message)`, problems.join('; '));
  note(`${X.role} (${X.impl}) PreKey message: ${describeFields(body)}`);
  if (!Y.canRead(body[0])) {
    skip(`${X.role}->${Y.role} session setup (prekey ${prekey})`, `${Y.role} (${Y.impl}) cannot read ${byteHex(body[0])}`);
    return;
  }
  let r;
  try {
    r = await Y.decrypt(X, m1);
  } catch (e) {
    fail(`${X.role}->${Y.role} session setup (prekey ${prekey}): ${Y.role} decrypts the PreKey message`, `${summary(m1)}: ${e.message}`);
    return;
  }
  check(r.plaintext === pt.toString('base64'), `${X.role}->${Y.role} session setup (prekey ${prekey}): ${Y.role} decrypts the PreKey message`, summary(m1));
  const yi = await sessionInfo(Y, X);
  check(yi.exists && yi.has_current_state && yi.session_version === v,
    `${Y.role} session version agrees (${yi.session_version} vs ${v})`, JSON.stringify(yi));

  const reply = await roundOne(Y, X, `${Y.role}->${X.role} reply decrypts`, `${Y.role}->${X.role} reply`);
  if (reply) {
    check(reply.type === 'whisper', `${Y.role}'s reply is a whisper message`, summary(reply));
    const m3 = await roundOne(X, Y, `${X.role}->${Y.role} after the reply decrypts`, `${X.role}->${Y.role} third`);
    if (m3) check(m3.type === 'whisper', `${X.role} sends whisper messages once acknowledged`, summary(m3));
  } else if (reply === null) {
    const m3 = await roundOne(X, Y, `${X.role}->${Y.role} second message decrypts`, `${X.role}->${Y.role} second`);
    if (m3) check(m3.type === 'prekey', `${X.role} keeps sending PreKey messages while unacknowledged`, summary(m3));
  }
}

/** At least N messages each way, with random reordering and drops; X initiates. */
async function scenarioReorder(xr, yr) {
  const [X, Y] = await fresh(xr, yr);
  const N = opts.messages;
  await connect(X, Y);
  const dirs = {
    fwd: { from: X, to: Y, pending: [], sent: 0, dropped: 0, delivered: 0, good: 0, bad: [], viable: true, maxDisp: 0, seq: 0, recvSeq: [] },
    back: { from: Y, to: X, pending: [], sent: 0, dropped: 0, delivered: 0, good: 0, bad: [], viable: true, maxDisp: 0, seq: 0, recvSeq: [] },
  };
  let yHasSession = false;
  let round = 0;
  const DROP = 0.08;
  const MAX_AGE = 3;

  const sendBurst = async (d) => {
    const k = Math.min(randInt(1, 6), N - d.sent);
    for (let i = 0; i < k; i++) {
      const pt = plaintext(`${d.from.role}->${d.to.role} #${d.sent}`);
      const m = await d.from.encrypt(d.to, pt);
      const first = Buffer.from(m.body, 'base64')[0];
      if (!d.to.canRead(first)) {
        d.viable = false;
        d.reason = `${d.to.role} (${d.to.impl}) cannot read ${byteHex(first)} written by ${d.from.role} (${d.from.impl})`;
        return;
      }
      const drop = rand() < DROP;
      d.sent++;
      if (drop) d.dropped++;
      else d.pending.push({ m, pt, round, seq: d.seq });
      d.seq++;
    }
  };
  const deliver = async (d, all) => {
    const now = [];
    const later = [];
    for (const p of d.pending) (all || round - p.round >= MAX_AGE || rand() < 0.5 ? now : later).push(p);
    d.pending = later;
    shuffle(now);
    for (const p of now) {
      d.delivered++;
      d.maxDisp = Math.max(d.maxDisp, Math.abs(d.recvSeq.length - p.seq));
      d.recvSeq.push(p.seq);
      try {
        const r = await d.to.decrypt(d.from, p.m);
        if (r.plaintext === p.pt.toString('base64')) {
          d.good++;
          if (d === dirs.fwd) yHasSession = true;
        } else d.bad.push(`#${p.seq}: wrong plaintext`);
      } catch (e) {
        d.bad.push(`#${p.seq} (${summary(p.m)}): ${e.message}`);
      }
    }
  };

  while (round < 100000) {
    const cands = Object.values(dirs).filter((d) => d.viable && d.sent < N && (d === dirs.fwd || yHasSession));
    if (cands.length === 0) {
      if (!yHasSession && dirs.fwd.sent >= N) break;
      if (dirs.fwd.pending.length === 0 && dirs.back.pending.length === 0) break;
    } else await sendBurst(cands[randInt(0, cands.length - 1)]);
    for (const d of Object.values(dirs)) await deliver(d, false);
    round++;
  }
  for (const d of Object.values(dirs)) await deliver(d, true);

  for (const d of Object.values(dirs)) {
    const desc = `reorder ${d.from.role}->${d.to.role}: every delivered message of ${N} decrypts correctly`;
    if (d === dirs.back && !yHasSession) {
      skip(desc, `${Y.role} never got a session: ${dirs.fwd.reason ?? 'no message delivered'}`);
      continue;
    }
    if (!d.viable && d.sent === 0) {
      skip(desc, d.reason);
      continue;
    }
    if (!d.viable) {
      skip(desc, `${d.reason} (after ${d.sent})`);
      continue;
    }
    check(d.bad.length === 0 && d.good === d.delivered && d.sent === N, desc,
      `${d.good}/${d.delivered} delivered ok, ${d.dropped} dropped, max displacement ${d.maxDisp}${d.bad.length ? `; ${d.bad.slice(0, 5).join('; ')}` : ''}`);
  }
}

/** Replays, forgeries and wrong senders are refused and leave the session working; X initiates. */
async function scenarioReplay(xr, yr) {
  const [X, Y] = await fresh(xr, yr);
  await connect(X, Y);
  const pt1 = plaintext(`${X.role}->${Y.role} 1`);
  const m1 = await X.encrypt(Y, pt1);
  if (!Y.canRead(Buffer.from(m1.body, 'base64')[0])) {
    skip(`replay/tamper ${X.role}->${Y.role}`, `${Y.role} (${Y.impl}) cannot read ${summary(m1)}`);
    return;
  }
  try {
    const r = await Y.decrypt(X, m1);
    if (!check(r.plaintext === pt1.toString('base64'), `${Y.role} decrypts ${X.role}'s first message`)) return;
  } catch (e) {
    fail(`${Y.role} decrypts ${X.role}'s first message`, e.message);
    return;
  }
  const rp = await Y.refused({ cmd: 'decrypt', peer: X.name, device: X.device, type: m1.type, body: m1.body });
  check(rp !== null, `${Y.role} refuses a replayed ${m1.type} message`, rp ? `${rp.name}: ${rp.error}` : 'accepted');
  if (!(await roundOne(X, Y, `${X.role}->${Y.role} works after the refused replay`, `${X.role}->${Y.role} 2`))) return;

  const ack = await roundOne(Y, X, `${Y.role}->${X.role} reply`, `${Y.role}->${X.role} 1`);
  if (ack) {
    const pt = plaintext(`${X.role}->${Y.role} 3`);
    const m = await X.encrypt(Y, pt);
    const r = await Y.decrypt(X, m).catch((e) => ({ error: e.message }));
    check(r.plaintext === pt.toString('base64'), `${Y.role} decrypts a whisper message`, r.error);
    const rp2 = await Y.refused({ cmd: 'decrypt', peer: X.name, device: X.device, type: m.type, body: m.body });
    check(rp2 !== null, `${Y.role} refuses a replayed ${m.type} message`, rp2 ? `${rp2.name}: ${rp2.error}` : 'accepted');
    // And the other way round.
    const ptb = plaintext(`${Y.role}->${X.role} 2`);
    const mb = await Y.encrypt(X, ptb);
    await X.decrypt(Y, mb);
    const rp3 = await X.refused({ cmd: 'decrypt', peer: Y.name, device: Y.device, type: mb.type, body: mb.body });
    check(rp3 !== null, `${X.role} refuses a replayed ${mb.type} message`, rp3 ? `${rp3.name}: ${rp3.error}` : 'accepted');
  }

  // Forgeries: each refused, then the genuine message still decrypts (the session was not changed).
  for (let round = 0; round < 2; round++) {
    const pt = plaintext(`${X.role}->${Y.role} forged-${round}`);
    const m = await X.encrypt(Y, pt);
    for (const t of tamperings(m)) {
      const r = await Y.refused({ cmd: 'decrypt', peer: X.name, device: X.device, ...t.msg });
      check(r !== null, `${Y.role} refuses a ${m.type} message with a flipped ${t.what}`, r ? `${r.name}: ${r.error}` : 'accepted');
    }
    const cut = Buffer.from(m.body, 'base64').subarray(0, 6).toString('base64');
    const rc = await Y.refused({ cmd: 'decrypt', peer: X.name, device: X.device, type: m.type, body: cut });
    check(rc !== null, `${Y.role} refuses a truncated ${m.type} message`, rc ? `${rc.name}: ${rc.error}` : 'accepted');
    const rw = await Y.refused({ cmd: 'decrypt', peer: `${X.name.slice(0, -4)}beef`, device: X.device, type: m.type, body: m.body });
    check(rw !== null, `${Y.role} refuses ${X.role}'s message attributed to an unknown sender`, rw ? `${rw.name}: ${rw.error}` : 'accepted');
    const r = await Y.decrypt(X, m).catch((e) => ({ error: e.message }));
    check(r.plaintext === pt.toString('base64'), `${Y.role} still decrypts the genuine message after refusing forgeries (round ${round})`, r.error);
    if (round === 0 && ack) await roundOne(Y, X, `${Y.role}->${X.role} works after the forgeries`, `${Y.role}->${X.role} 3`);
  }
  await roundOne(X, Y, `${X.role}->${Y.role} works after the forgeries`, `${X.role}->${Y.role} last`);

  // An impostor: another identity under X's name and device sends a PreKey message (TOFU).
  const peer = new Peer(xr, roleCmd[xr]);
  liveParties.push(peer);
  const Z = new Party(xr, peer, X.info);
  Object.assign(Z, { name: X.name, device: X.device, regId: randInt(1, 16380) });
  await Z.call({ cmd: 'init', name: Z.name, device: Z.device, registration_id: Z.regId });
  await connect(Z, Y);
  const zm = await Z.encrypt(Y, plaintext('impostor'));
  if (Y.canRead(Buffer.from(zm.body, 'base64')[0])) {
    const rz = await Y.refused({ cmd: 'decrypt', peer: X.name, device: X.device, ...zm });
    check(rz !== null, `${Y.role} refuses a PreKey message under ${X.role}'s address from another identity`, rz ? `${rz.name}: ${rz.error}` : 'accepted');
    await roundOne(X, Y, `${X.role}->${Y.role} works after the impostor`, `${X.role}->${Y.role} after impostor`);
  }
}

/** The session is replaced (archive + new bundle) while old messages are in flight; X initiates. */
async function scenarioReplaced(xr, yr, acknowledged) {
  const label = acknowledged ? 'acknowledged' : 'unacknowledged';
  const [X, Y] = await fresh(xr, yr);
  await connect(X, Y);
  const first = await roundOne(X, Y, `${X.role}->${Y.role} first message (${label} session)`, `${X.role}->${Y.role} first`);
  if (!first) return;
  if (acknowledged) {
    const reply = await roundOne(Y, X, `${Y.role}->${X.role} reply`, `${Y.role}->${X.role} first`);
    if (!reply) {
      if (reply === null) skip(`session replaced with ${label} messages in flight ${X.role}->${Y.role}`, 'needs replies');
      return;
    }
  }
  const inflight = [];
  for (let i = 0; i < 6; i++) {
    const pt = plaintext(`${X.role}->${Y.role} old #${i}`);
    inflight.push({ pt, m: await X.encrypt(Y, pt) });
  }
  // Deliver one of them now, so the old session has moved on at Y too.
  const early = inflight.shift();
  const re = await Y.decrypt(X, early.m).catch((e) => ({ error: e.message }));
  check(re.plaintext === early.pt.toString('base64'), `${Y.role} decrypts an old-session message before the switch`, re.error);

  await X.call({ cmd: 'archive_session', peer: Y.name, device: Y.device });
  const xa = await sessionInfo(X, Y);
  check(xa.exists && !xa.has_current_state, `${X.role} has no current session after archive_session`, JSON.stringify(xa));
  const refusedSend = await X.refused({ cmd: 'encrypt', peer: Y.name, device: Y.device, plaintext: 'aGk=' });
  check(refusedSend !== null, `${X.role} refuses to encrypt with only an archived session`, refusedSend ? refusedSend.error : 'accepted');
  await connect(X, Y, { prekey: rand() < 0.5 });
  const nptA = plaintext(`${X.role}->${Y.role} new #0`);
  const n0 = await X.encrypt(Y, nptA);
  check(n0.type === 'prekey', `${X.role}'s first message on the new session is a PreKey message`, summary(n0));
  if (inflight[0].m.type === 'prekey' && n0.type === 'prekey') {
    const baseKey = (m) => protoFields(Buffer.from(m.body, 'base64').subarray(1)).find(([n]) => n === 2)?.[2];
    const [oldBase, newBase] = [baseKey(inflight[0].m), baseKey(n0)];
    check(oldBase && newBase && !oldBase.equals(newBase), 'the new session has a new base key');
  }
  const rn = await Y.decrypt(X, n0).catch((e) => ({ error: e.message }));
  check(rn.plaintext === nptA.toString('base64'), `${Y.role} decrypts the first message of the new session`, rn.error);

  shuffle(inflight);
  const bad = [];
  for (const { pt, m } of inflight) {
    const r = await Y.decrypt(X, m).catch((e) => ({ error: e.message }));
    if (r.plaintext !== pt.toString('base64')) bad.push(`${summary(m)}: ${r.error ?? 'wrong plaintext'}`);
  }
  check(bad.length === 0, `session replaced with ${label} messages in flight: ${inflight.length} old ${inflight[0].m.type} messages still decrypt at ${Y.role} after the new session`, bad.slice(0, 3).join('; '));

  // Both sides carry on.
  const a = await roundOne(X, Y, `${X.role}->${Y.role} after the old messages`, `${X.role}->${Y.role} new #1`,
    'trial-decryption-mutates-sessions');
  if (a) {
    const b = await roundOne(Y, X, `${Y.role}->${X.role} after the switch`, `${Y.role}->${X.role} new`);
    if (b) await roundOne(X, Y, `${X.role}->${Y.role} after ${Y.role}'s reply`, `${X.role}->${Y.role} new #2`);
  }
}

/** Three members with sender keys; SKDMs travel inside pairwise 1:1 messages. */
async function scenarioGroup() {
  if (!opts.c) {
    skip('group of three', 'needs --c');
    return;
  }
  const parties = await fresh('A', 'B', 'C');
  const lacking = parties.filter((p) => p.info.groups === false);
  if (lacking.length) {
    skip('group of three', `${lacking.map((p) => `${p.role} (${p.impl})`).join(', ')} reports groups:false`);
    return;
  }
  const group = randUuid();
  // Pairwise sessions for the SKDM transport.
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) {
      const [X, Y] = [parties[i], parties[j]];
      await connect(X, Y);
      if (!(await roundOne(X, Y, `1:1 session ${X.role}->${Y.role} for SKDM transport`, `${X.role}->${Y.role} hello`))) return;
    }
  }
  const skdms = {};
  for (const P of parties) {
    const s = await P.call({ cmd: 'skdm', group });
    skdms[P.role] = s;
    const body = Buffer.from(s.body, 'base64');
    const f = fieldMap(body.subarray(1));
    const one = (n) => (f.get(n) ?? [])[0];
    check(body[0] === 0x33 && one(1)?.length === 16 && hex(one(1)) === group.replace(/-/g, '')
      && one(2) === s.chain_id && one(3) === s.iteration && s.iteration === 0 && one(4)?.length === 32 && one(5)?.length === 33,
    `${P.role} SKDM layout (0x33, distribution id, chain id ${s.chain_id}, iteration 0, chain key, signing key)`,
    `first ${byteHex(body[0])}, ${body.length}B`);
    for (const Q of parties) {
      if (Q === P) continue;
      const wrapped = await P.encrypt(Q, body);
      const r = await Q.decrypt(P, wrapped);
      const inner = Buffer.from(r.plaintext, 'base64');
      check(inner.equals(body), `${P.role}'s SKDM reaches ${Q.role} inside a 1:1 ${wrapped.type} message`);
      await Q.call({ cmd: 'process_skdm', sender: P.name, device: P.device, body: inner.toString('base64') });
    }
  }
  // Messages from each member, interleaved; each recipient gets its own shuffled order with drops.
  const G = Math.max(10, Math.floor(opts.messages / 3));
  const sent = [];
  const counts = { A: 0, B: 0, C: 0 };
  for (let k = 0; k < 3 * G; k++) {
    const P = parties[randInt(0, 2)];
    const pt = plaintext(`${P.role} group #${counts[P.role]}`);
    const r = await P.call({ cmd: 'group_encrypt', group, plaintext: pt.toString('base64') });
    if (counts[P.role] === 0) {
      const b = Buffer.from(r.body, 'base64');
      check(r.type === 'senderkey' && b[0] === 0x33, `${P.role}'s sender-key message first byte ${byteHex(b[0])}`, `${r.type}, ${b.length}B`);
    }
    counts[P.role]++;
    sent.push({ from: P, pt, body: r.body });
  }
  for (const Q of parties) {
    const mine = shuffle(sent.filter((s) => s.from !== Q && rand() >= 0.1));
    const bad = [];
    for (const s of mine) {
      const r = await Q.call({ cmd: 'group_decrypt', sender: s.from.name, device: s.from.device, body: s.body }).catch((e) => ({ error: e.message }));
      if (r.plaintext !== s.pt.toString('base64')) bad.push(`from ${s.from.role}: ${r.error ?? 'wrong plaintext'}`);
    }
    const from = parties.filter((p) => p !== Q).map((p) => `${p.role} (${p.impl})`).join(' and ');
    check(bad.length === 0, `group: ${Q.role} (${Q.impl}) decrypts ${mine.length} reordered messages from ${from}`, bad.slice(0, 3).join('; '));
  }
  // Replays and forgeries.
  const [A, B, C] = parties;
  const s0 = sent.find((s) => s.from === A) ?? sent[0];
  const receiver = s0.from === B ? C : B;
  const replay = await receiver.call({ cmd: 'group_decrypt', sender: s0.from.name, device: s0.from.device, body: s0.body })
    .then(() => null, (e) => e);
  // The message may have been dropped for this receiver; deliver it once more to make sure it was seen.
  const again = await receiver.refused({ cmd: 'group_decrypt', sender: s0.from.name, device: s0.from.device, body: s0.body });
  check(again !== null, `group: ${receiver.role} refuses a replayed sender-key message`, again ? again.error : `accepted${replay ? '' : ' twice'}`);
  const pt = plaintext(`${A.role} group forged`);
  const r = await A.call({ cmd: 'group_encrypt', group, plaintext: pt.toString('base64') });
  const body = Buffer.from(r.body, 'base64');
  for (const [what, pos] of [['ciphertext', body.length - 65], ['signature', body.length - 10]]) {
    const t = Buffer.from(body);
    t[pos] ^= 0x02;
    const e = await B.refused({ cmd: 'group_decrypt', sender: A.name, device: A.device, body: t.toString('base64') });
    check(e !== null, `group: ${B.role} refuses a sender-key message with a flipped ${what} bit`, e ? e.error : 'accepted');
  }
  const wrong = await B.refused({ cmd: 'group_decrypt', sender: C.name, device: C.device, body: r.body });
  check(wrong !== null, `group: ${B.role} refuses ${A.role}'s message attributed to ${C.role}`, wrong ? wrong.error : 'accepted');
  const ok = await B.call({ cmd: 'group_decrypt', sender: A.name, device: A.device, body: r.body }).catch((e) => ({ error: e.message }));
  check(ok.plaintext === pt.toString('base64'), `group: ${B.role} decrypts the genuine message after refusing forgeries`, ok.error);
  const later = await A.call({ cmd: 'skdm', group });
  check(later.chain_id === skdms.A.chain_id && later.iteration === counts.A + 1,
    `group: ${A.role}'s SKDM after ${counts.A + 1} messages keeps the chain and reports iteration ${counts.A + 1}`,
    `chain ${later.chain_id}, iteration ${later.iteration}`);
}

const KAT = {
  alice: '0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868',
  bob: '05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b',
  aliceId: '+14152222222',
  bobId: '+14153333333',
  displayable: '300354477692869396892869876765458257569162576843440918079131',
  scannableV2: '080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d',
};

async function scenarioFingerprint(xr, yr) {
  const [X, Y] = await fresh(xr, yr);
  const disp = (P) => P.info.displayable_fingerprint !== false;
  const scan = (P) => P.info.scannable_fingerprint !== false;
  const why = (ps, what) => `${ps.map((p) => `${p.role} (${p.impl})`).join(', ')} reports ${what}:false`;
  const k64 = (h) => Buffer.from(h, 'hex').toString('base64');
  const kat = (P, extra) => P.call({ cmd: 'fingerprint', local_id: KAT.aliceId, peer_id: KAT.bobId,
    local_identity: k64(KAT.alice), peer_identity: k64(KAT.bob), ...extra });
  for (const P of [X, Y]) {
    if (!disp(P) && !scan(P)) {
      skip(`${P.role} safety-number known answers (WIRE.md §12)`, why([P], 'displayable_fingerprint/scannable_fingerprint'));
      continue;
    }
    try {
      const v2 = await kat(P, { iterations: 5200, version: 2 });
      if (disp(P)) {
        check(v2.displayable === KAT.displayable, `${P.role} (${P.impl}) displayable safety number known answer`, v2.displayable);
        const hexIds = await P.call({ cmd: 'fingerprint', local_id: Buffer.from(KAT.aliceId).toString('hex'), peer_id: Buffer.from(KAT.bobId).toString('hex'),
          id_encoding: 'hex', local_identity: k64(KAT.alice), peer_identity: k64(KAT.bob) });
        check(hexIds.displayable === KAT.displayable, `${P.role} id_encoding hex gives the same known answer`, hexIds.displayable);
        const b64Ids = await P.call({ cmd: 'fingerprint', local_id: Buffer.from(KAT.aliceId).toString('base64'), peer_id: Buffer.from(KAT.bobId).toString('base64'),
          id_encoding: 'b64', local_identity: k64(KAT.alice), peer_identity: k64(KAT.bob) });
        check(b64Ids.displayable === KAT.displayable, `${P.role} id_encoding b64 gives the same known answer`, b64Ids.displayable);
        const other = await kat(P, { iterations: 1024 });
        check(/^\d{60}$/.test(other.displayable) && other.displayable !== KAT.displayable, `${P.role} honours "iterations" (1024 gives another number)`, other.displayable);
      } else skip(`${P.role} displayable known answer`, why([P], 'displayable_fingerprint'));
      if (scan(P)) {
        check(hex(Buffer.from(v2.scannable, 'base64')) === KAT.scannableV2, `${P.role} scannable v2 known answer`, hex(Buffer.from(v2.scannable, 'base64')));
        const v1 = await kat(P, { version: 1 });
        check(hex(Buffer.from(v1.scannable, 'base64')) === `0801${KAT.scannableV2.slice(4)}`, `${P.role} scannable v1 known answer (default iterations 5200)`);
        const bob = await P.call({ cmd: 'fingerprint', local_id: KAT.bobId, peer_id: KAT.aliceId,
          local_identity: k64(KAT.bob), peer_identity: k64(KAT.alice), compare_with: v2.scannable });
        check(bob.matches === true && (!disp(P) || bob.displayable === KAT.displayable), `${P.role} known answer from Bob's side: same number, scannable matches Alice's`, JSON.stringify({ d: bob.displayable, m: bob.matches }));
      } else skip(`${P.role} scannable known answers`, why([P], 'scannable_fingerprint'));
    } catch (e) {
      if (e instanceof Unsupported) skip(`${P.role} safety-number known answers`, e.message);
      else fail(`${P.role} safety-number known answers`, e.message);
    }
  }
  const enc = opts.plainNames ? 'utf8' : 'uuid';
  const fp = (P, Q, extra = {}) => P.call({ cmd: 'fingerprint', local_id: P.name, peer_id: Q.name, peer_identity: Q.identity, id_encoding: enc, ...extra });
  if (!disp(X) || !disp(Y)) skip(`displayable safety numbers agree between ${X.role} and ${Y.role}`, why([X, Y].filter((p) => !disp(p)), 'displayable_fingerprint'));
  if (!scan(X) || !scan(Y)) skip(`scannable safety numbers match between ${X.role} and ${Y.role}`, why([X, Y].filter((p) => !scan(p)), 'scannable_fingerprint'));
  if ((!disp(X) || !disp(Y)) && (!scan(X) || !scan(Y))) return;
  const fx = await fp(X, Y);
  const fy = await fp(Y, X);
  if (disp(X) && disp(Y)) {
    check(/^\d{60}$/.test(fx.displayable) && fx.displayable === fy.displayable, `displayable safety numbers of ${X.role} and ${Y.role} are equal (${enc} ids)`, `${fx.displayable} / ${fy.displayable}`);
    const wrong = await fp(X, Y, { peer_identity: X.identity });
    check(wrong.displayable !== fy.displayable, `${X.role} with a wrong key for ${Y.role}: the numbers differ`, wrong.displayable);
  }
  if (scan(X) && scan(Y)) {
    const cx = await fp(X, Y, { compare_with: fy.scannable });
    const cy = await fp(Y, X, { compare_with: fx.scannable });
    check(cx.matches === true, `${X.role} scans ${Y.role}'s code: matches`, JSON.stringify(cx.matches));
    check(cy.matches === true, `${Y.role} scans ${X.role}'s code: matches`, JSON.stringify(cy.matches));
    // A man in the middle: X holds the wrong key for Y.
    const mitm = await fp(X, Y, { peer_identity: X.identity, compare_with: fy.scannable });
    check(mitm.matches === false, `${X.role} with a wrong key for ${Y.role}: the scan does not match`, JSON.stringify(mitm.matches));
    const swapped = await fp(X, Y, { compare_with: fx.scannable });
    check(swapped.matches === false, `${X.role}'s own code does not match itself (local/remote order is checked)`, JSON.stringify(swapped.matches));
  }
}

// WIRE.md §9: MAX_FORWARD_JUMPS and MAX_MESSAGE_KEYS (1:1 chains and sender-key states alike).
const MAX_FORWARD_JUMPS = 25000;
const MAX_MESSAGE_KEYS = 2000;
const MAX_RECEIVER_CHAINS = 5;
const ARCHIVED_STATES_MAX_LENGTH = 40;

/**
 * Chain limits at the receiver Y, exactly at the boundaries libsignal 0.72.1 has: of the keys
 * skipped by a jump only the newest MAX_MESSAGE_KEYS are kept; a counter more than
 * MAX_FORWARD_JUMPS ahead of the next expected one is refused, and the session survives it.
 */
async function scenarioLimits(xr, yr) {
  const [X, Y] = await fresh(xr, yr);
  const defect = 'different-chain-limits';
  if ((Y.info.known_defects ?? []).includes(defect)) {
    skip(`limits at ${Y.role}`, `known defect of ${Y.role} (${Y.impl}): ${defect}`);
    return;
  }
  await connect(X, Y);
  if (!(await roundOne(X, Y, `${X.role}->${Y.role} first message`, `${X.role}->${Y.role} first`))) return;
  const back = await roundOne(Y, X, `${Y.role}->${X.role} reply (starts ${X.role}'s next chain at 0)`, `${Y.role}->${X.role} reply`);
  if (!back) {
    if (back === null) skip(`limits ${X.role}->${Y.role}`, 'needs replies');
    return;
  }
  const pt = Buffer.from('limit');
  const burst = async (P, n, make) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await make());
    return out;
  };
  const outcome = async (P, req) => {
    const r = await P.peer.request(req);
    if (r && r.unsupported) throw new Unsupported(`${P.role} does not support ${req.cmd}`);
    return r.plaintext === pt.toString('base64') ? 'ok' : `refused (${r.name ?? ''}: ${r.error ?? 'wrong plaintext'})`;
  };
  const probe = async (label, P, msgs, steps) => {
    const got = [];
    let good = true;
    for (const [idx, want] of steps) {
      const o = await outcome(P, msgs(idx));
      got.push(`#${idx} ${o}`);
      if ((o === 'ok') !== (want === 'ok')) good = false;
    }
    check(good, label, got.join(', '));
  };
  // Skipped keys: jump to #N+49 first; then only #49..#N+48 are still decryptable.
  const N = MAX_MESSAGE_KEYS;
  const ms = await burst(X, N + 50, () => X.encrypt(Y, pt));
  const dec = (i) => ({ cmd: 'decrypt', peer: X.name, device: X.device, type: ms[i].type, body: ms[i].body });
  await probe(`1:1 ${X.role}->${Y.role}: after a jump to #${N + 49}, only the newest ${N} skipped keys are kept (#48 refused, #49 ok), no replays`, Y, dec,
    [[N + 49, 'ok'], [0, 'no'], [48, 'no'], [49, 'ok'], [50, 'ok'], [N + 48, 'ok'], [N + 49, 'no'], [49, 'no']]);
  // Forward jumps, counted from the next expected counter (#N+50).
  const next = N + 50;
  const more = await burst(X, MAX_FORWARD_JUMPS + 2, () => X.encrypt(Y, pt));
  const all = ms.concat(more);
  const dec2 = (i) => ({ cmd: 'decrypt', peer: X.name, device: X.device, type: all[i].type, body: all[i].body });
  await probe(`1:1 ${X.role}->${Y.role}: a counter ${MAX_FORWARD_JUMPS + 1} ahead is refused, ${MAX_FORWARD_JUMPS} ahead is accepted, then the refused one decrypts`, Y, dec2,
    [[next + MAX_FORWARD_JUMPS + 1, 'no'], [next + MAX_FORWARD_JUMPS, 'ok'], [next + MAX_FORWARD_JUMPS + 1, 'ok']]);
  await roundOne(Y, X, `${Y.role}->${X.role} after the limits`, `${Y.role}->${X.role} after limits`);

  // Receiving chains: X starts a new chain after each reply of Y; Y keeps the newest
  // MAX_RECEIVER_CHAINS, so a held message of the 6th-newest chain is refused, the 5th-newest ok.
  const held = [];
  for (let c = 0; c < MAX_RECEIVER_CHAINS + 1; c++) {
    const a = plaintext(`${X.role} chain ${c} a`);
    const h = plaintext(`${X.role} chain ${c} held`);
    const ma = await X.encrypt(Y, a);
    held.push({ pt: h, m: await X.encrypt(Y, h) });
    const ra = await Y.decrypt(X, ma);
    if (ra.plaintext !== a.toString('base64')) throw new Error(`chain ${c}: wrong plaintext`);
    const rp = plaintext(`${Y.role} reply ${c}`);
    const mr = await Y.encrypt(X, rp);
    await X.decrypt(Y, mr);
  }
  const chainOutcomes = [];
  let chainsGood = true;
  for (const [i, want] of [[0, 'no'], [1, 'ok'], [MAX_RECEIVER_CHAINS, 'ok']]) {
    const r = await Y.peer.request({ cmd: 'decrypt', peer: X.name, device: X.device, ...held[i].m });
    const ok = r.plaintext === held[i].pt.toString('base64');
    chainOutcomes.push(`chain ${i}: ${ok ? 'ok' : `refused (${r.name}: ${r.error})`}`);
    if (ok !== (want === 'ok')) chainsGood = false;
  }
  check(chainsGood, `1:1 ${X.role}->${Y.role}: of ${MAX_RECEIVER_CHAINS + 1} receiving chains ${Y.role} keeps the newest ${MAX_RECEIVER_CHAINS}`, chainOutcomes.join(', '));
  await roundOne(X, Y, `${X.role}->${Y.role} after the chain limit`, `${X.role}->${Y.role} after chains`);

  // Archived states: ARCHIVED_STATES_MAX_LENGTH previous sessions are kept at Y. X replaces the
  // session 41 times, each acknowledged, holding one whisper message of each of the first two.
  const heldOld = [];
  for (let k = 0; k < ARCHIVED_STATES_MAX_LENGTH + 1; k++) {
    if (k <= 1) {
      const h = plaintext(`${X.role} session ${k} held`);
      heldOld.push({ pt: h, m: await X.encrypt(Y, h) });
    }
    await X.call({ cmd: 'archive_session', peer: Y.name, device: Y.device });
    await connect(X, Y, { prekey: false });
    const p0 = plaintext(`${X.role} session ${k + 1}`);
    const r0 = await Y.decrypt(X, await X.encrypt(Y, p0));
    if (r0.plaintext !== p0.toString('base64')) throw new Error(`session ${k + 1}: wrong plaintext`);
    await X.decrypt(Y, await Y.encrypt(X, plaintext(`${Y.role} session ${k + 1}`)));
  }
  const archOutcomes = [];
  let archGood = true;
  for (const [i, want] of [[0, 'no'], [1, 'ok']]) {
    const r = await Y.peer.request({ cmd: 'decrypt', peer: X.name, device: X.device, ...heldOld[i].m });
    const ok = r.plaintext === heldOld[i].pt.toString('base64');
    archOutcomes.push(`${heldOld[i].m.type} of session ${i}: ${ok ? 'ok' : `refused (${r.name}: ${r.error})`}`);
    if (ok !== (want === 'ok')) archGood = false;
  }
  check(archGood, `1:1 ${X.role}->${Y.role}: after ${ARCHIVED_STATES_MAX_LENGTH + 1} replacements ${Y.role} keeps ${ARCHIVED_STATES_MAX_LENGTH} archived sessions (oldest refused, next ok)`, archOutcomes.join(', '));
  await roundOne(X, Y, `${X.role}->${Y.role} after the archive limit`, `${X.role}->${Y.role} after archive`);

  if (X.info.groups === false || Y.info.groups === false) {
    skip(`sender-key limits ${X.role}->${Y.role}`, `${[X, Y].filter((p) => p.info.groups === false).map((p) => `${p.role} (${p.impl})`).join(', ')} reports groups:false`);
    return;
  }
  const group = randUuid();
  const sk = await X.call({ cmd: 'skdm', group });
  await Y.call({ cmd: 'process_skdm', sender: X.name, device: X.device, body: sk.body });
  const gm = await burst(X, N + 50, () => X.call({ cmd: 'group_encrypt', group, plaintext: pt.toString('base64') }));
  const gdec = (i) => ({ cmd: 'group_decrypt', sender: X.name, device: X.device, body: gm[i].body });
  await probe(`sender keys ${X.role}->${Y.role}: after a jump to #${N + 49}, only the newest ${N} skipped keys are kept`, Y, gdec,
    [[N + 49, 'ok'], [0, 'no'], [48, 'no'], [49, 'ok'], [N + 48, 'ok'], [N + 49, 'no']]);
  const gmore = await burst(X, MAX_FORWARD_JUMPS + 2, () => X.call({ cmd: 'group_encrypt', group, plaintext: pt.toString('base64') }));
  const gall = gm.concat(gmore);
  const gdec2 = (i) => ({ cmd: 'group_decrypt', sender: X.name, device: X.device, body: gall[i].body });
  await probe(`sender keys ${X.role}->${Y.role}: a counter ${MAX_FORWARD_JUMPS + 1} ahead is refused, ${MAX_FORWARD_JUMPS} ahead is accepted`, Y, gdec2,
    [[next + MAX_FORWARD_JUMPS + 1, 'no'], [next + MAX_FORWARD_JUMPS, 'ok'], [next + MAX_FORWARD_JUMPS + 1, 'ok']]);
}

/** Bad requests get one error line each; the peer keeps serving. */
async function scenarioRequests(role) {
  const [P, Q] = await fresh(role, role);
  const bundle = await Q.call({ cmd: 'bundle' });
  const badIk = Buffer.from(bundle.identity_key, 'base64').subarray(0, 32).toString('base64');
  const noSig = { ...bundle };
  delete noSig.signed_prekey_signature;
  const cases = [
    ['a line that is not JSON', 'this is not json'],
    ['a JSON array', '[1,2,3]'],
    ['an unknown command', JSON.stringify({ cmd: 'no_such_command' })],
    ['a request without cmd', JSON.stringify({ peer: 'x' })],
    ['encrypt without a session', JSON.stringify({ cmd: 'encrypt', peer: 'nobody', device: Q.device, plaintext: 'aGk=' })],
    ['decrypt with invalid base64', JSON.stringify({ cmd: 'decrypt', peer: Q.name, device: Q.device, type: 'whisper', body: '!!notbase64' })],
    ['decrypt with an unknown type', JSON.stringify({ cmd: 'decrypt', peer: Q.name, device: Q.device, type: 'bogus', body: 'AAAA' })],
    ['decrypt of random bytes as whisper', JSON.stringify({ cmd: 'decrypt', peer: Q.name, device: Q.device, type: 'whisper', body: randBytes(60).toString('base64') })],
    ['decrypt of random bytes as prekey', JSON.stringify({ cmd: 'decrypt', peer: Q.name, device: Q.device, type: 'prekey', body: Buffer.concat([Buffer.from([0x33]), randBytes(80)]).toString('base64') })],
    ['decrypt of an empty body', JSON.stringify({ cmd: 'decrypt', peer: Q.name, device: Q.device, type: 'whisper', body: '' })],
    ['process_bundle without a signature', JSON.stringify({ cmd: 'process_bundle', peer: Q.name, device: Q.device, bundle: noSig })],
    ['process_bundle with a 32-byte identity key', JSON.stringify({ cmd: 'process_bundle', peer: Q.name, device: Q.device, bundle: { ...bundle, identity_key: badIk } })],
    ['process_bundle without a bundle', JSON.stringify({ cmd: 'process_bundle', peer: Q.name, device: Q.device })],
  ];
  if (P.info.groups !== false) {
    cases.push(['group_decrypt of random bytes', JSON.stringify({ cmd: 'group_decrypt', sender: Q.name, device: Q.device, body: Buffer.concat([Buffer.from([0x33]), randBytes(120)]).toString('base64') })]);
    cases.push(['skdm for a group that is not a UUID', JSON.stringify({ cmd: 'skdm', group: 'not-a-uuid' })]);
    cases.push(['process_skdm of random bytes', JSON.stringify({ cmd: 'process_skdm', sender: Q.name, device: Q.device, body: Buffer.concat([Buffer.from([0x33]), randBytes(100)]).toString('base64') })]);
  }
  const bad = [];
  for (const [what, line] of cases) {
    const r = await P.peer.requestLine(line, what);
    if (!(r && typeof r.error === 'string')) bad.push(`${what}: ${JSON.stringify(r).slice(0, 100)}`);
  }
  check(bad.length === 0, `${P.role} (${P.impl}) answers ${cases.length} bad requests with one error line each`, bad.join('; '));
  const after = await P.peer.request({ cmd: 'session_info', peer: Q.name, device: Q.device });
  check(after && after.exists === false, `${P.role} keeps serving after bad requests, with no session created by them`, JSON.stringify(after));
  await connect(P, Q);
  await roundOne(P, Q, `${P.role} still sets up a session after bad requests`, `${P.role} after bad requests`);

  // Kyber options of bundle and init.
  if (P.info.kyber_in_bundle) {
    const off = await P.call({ cmd: 'bundle', kyber: false });
    check(off.kyber_prekey === undefined && off.kyber_prekey_id === undefined && off.prekey !== undefined,
      `${P.role} bundle with "kyber":false has no Kyber prekey`, Object.keys(off).join(','));
    const on = await P.call({ cmd: 'bundle', kyber: true, no_prekey: true });
    check(on.kyber_prekey !== undefined && on.prekey === undefined && Number.isInteger(on.kyber_prekey_id),
      `${P.role} bundle with "kyber":true, "no_prekey":true has a Kyber prekey and no one-time prekey`, Object.keys(on).join(','));
    const peer = new Peer(role, roleCmd[role]);
    liveParties.push(peer);
    const R = new Party(role, peer, P.info);
    await R.call({ cmd: 'init', name: `${P.name.slice(0, -4)}cafe`, registration_id: 77, kyber: false });
    const b = await R.call({ cmd: 'bundle' });
    check(b.kyber_prekey === undefined && b.device_id === 1, `${P.role} after init with "kyber":false: bundle without Kyber prekey, device defaults to 1`, Object.keys(b).join(','));
  } else {
    const b = await P.call({ cmd: 'bundle' });
    check(b.kyber_prekey === undefined, `${P.role} reports kyber_in_bundle:false and its bundle has no Kyber prekey`, Object.keys(b).join(','));
  }
}

// ---------------------------------------------------------------- main

async function run(name, fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Unsupported) skip(`${name}`, e.message);
    else if (!(e instanceof Abort)) fail(`${name} aborted`, e.stack && opts.verbose ? e.stack : e.message);
  } finally {
    reportInit = false;
    await closeAll();
  }
}

async function main() {
  console.log(`seed ${opts.seed}`);
  console.log(`A: ${opts.a}`);
  console.log(`B: ${opts.b}`);
  if (opts.c) console.log(`C: ${opts.c}`);
  await run('info', async () => {
    reportInit = true;
    const ps = await fresh(...(opts.c ? ['A', 'B', 'C'] : ['A', 'B']));
    for (const p of ps) console.log(`info ${p.role}: ${JSON.stringify(p.info)}`);
    reportInit = false;
  });
  const both = [['A', 'B'], ['B', 'A']];
  for (const s of opts.scenarios) {
    if (s === 'requests') {
      for (const r of opts.c ? ['A', 'B', 'C'] : ['A', 'B']) {
        context = `requests ${r}`;
        await run('requests', () => scenarioRequests(r));
      }
    } else if (s === 'setup') {
      for (const [x, y] of both) {
        for (const pk of [true, false]) {
          context = `setup ${x}->${y} ${pk ? 'with' : 'without'} one-time prekey`;
          await run('setup', () => scenarioSetup(x, y, pk));
        }
      }
    } else if (s === 'reorder') {
      for (const [x, y] of both) {
        context = `reorder, ${x} initiates`;
        await run('reorder', () => scenarioReorder(x, y));
      }
    } else if (s === 'replay') {
      for (const [x, y] of both) {
        context = `replay/tamper, ${x} initiates`;
        await run('replay', () => scenarioReplay(x, y));
      }
    } else if (s === 'replaced') {
      for (const [x, y] of both) {
        for (const ack of [true, false]) {
          context = `replaced, ${x} initiates, ${ack ? 'acknowledged' : 'unacknowledged'}`;
          await run('replaced', () => scenarioReplaced(x, y, ack));
        }
      }
    } else if (s === 'limits') {
      for (const [x, y] of both) {
        context = `limits at ${y}`;
        await run('limits', () => scenarioLimits(x, y));
      }
    } else if (s === 'group') {
      context = 'group';
      await run('group', () => scenarioGroup());
    } else if (s === 'fingerprint') {
      context = 'fingerprint';
      await run('fingerprint', () => scenarioFingerprint('A', 'B'));
    }
  }
  context = '';
  const bad = exitCodes.filter((e) => e.code !== 0);
  check(bad.length === 0, `all ${exitCodes.length} peer processes exited 0 at end of input`,
    bad.map((e) => `${e.role} (${e.cmd}): ${e.code}`).join('; '));
  console.log(`${tally.skipped} skipped`);
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exitCode = tally.failed ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  console.log(`${tally.passed} passed, ${tally.failed + 1} failed`);
  process.exitCode = 1;
});

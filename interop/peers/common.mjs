// Shared plumbing of the PEER.md peers: the JSON-lines loop, base64, identifier encodings and a
// minimal protobuf reader (for session versions that the libraries do not expose).
import { createInterface } from 'node:readline';

/** A request the peer refuses; `name` becomes the reply's error kind. */
export class PeerError extends Error {
  constructor(message, name = 'BadRequest', extra = {}) {
    super(message);
    this.name = name;
    this.extra = extra;
  }
}

/** A command this implementation cannot perform. */
export function unsupported(what) {
  return new PeerError(what, 'Unsupported', { unsupported: true });
}

export function b64(buf) {
  return Buffer.from(buf).toString('base64');
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes a required standard-base64 field of a request; refuses anything else. */
export function unb64(value, field) {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !B64_RE.test(value)) {
    throw new PeerError(`field "${field}" must be standard base64`);
  }
  return Buffer.from(value, 'base64');
}

export function str(req, field, dflt) {
  const v = req[field];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || v.length === 0) {
    throw new PeerError(`field "${field}" must be a non-empty string`);
  }
  return v;
}

export function int(req, field, dflt, { min = 0, max = 0xffffffff } = {}) {
  const v = req[field];
  if (v === undefined && dflt !== undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new PeerError(`field "${field}" must be an integer in ${min}..=${max}`);
  }
  return v;
}

export function bool(req, field, dflt) {
  const v = req[field];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new PeerError(`field "${field}" must be a boolean`);
  return v;
}

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

/** The bytes of a stable identifier for safety numbers, per PEER.md's `id_encoding`. */
export function encodeId(id, encoding, field) {
  switch (encoding ?? 'utf8') {
    case 'utf8':
      return Buffer.from(id, 'utf8');
    case 'uuid':
      if (!UUID_RE.test(id)) throw new PeerError(`field "${field}" is not a UUID`);
      return Buffer.from(id.replace(/-/g, ''), 'hex');
    case 'hex':
      if (!/^([0-9a-fA-F]{2})*$/.test(id)) throw new PeerError(`field "${field}" is not hex`);
      return Buffer.from(id, 'hex');
    case 'b64':
      return unb64(id, field);
    default:
      throw new PeerError(`unknown id_encoding "${encoding}"`);
  }
}

/**
 * Reads the top-level fields of a protobuf message: returns [fieldNumber, wireType, value] with
 * value a number (varint; exact up to 2^53) or a Buffer (length-delimited). Fixed-width fields
 * are returned as Buffers. Throws on malformed input.
 */
export function protoFields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let result = 0;
    let mul = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return result;
    }
    throw new Error('varint too long');
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wt = key % 8;
    if (wt === 0) out.push([field, wt, varint()]);
    else if (wt === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated field');
      out.push([field, wt, buf.subarray(i, i + len)]);
      i += len;
    } else if (wt === 1 || wt === 5) {
      const len = wt === 1 ? 8 : 4;
      if (i + len > buf.length) throw new Error('truncated field');
      out.push([field, wt, buf.subarray(i, i + len)]);
      i += len;
    } else throw new Error(`unsupported wire type ${wt}`);
  }
  return out;
}

/**
 * Runs the request loop: one reply line per input line, in order, processing strictly one
 * request at a time (the libraries are async). `handle(req)` returns the reply object or throws;
 * `errorName(e)` names a thrown library error. Exits 0 at end of input.
 */
export function serve(handle, errorName) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  let chain = Promise.resolve();
  const reply = (obj) => {
    process.stdout.write(JSON.stringify(obj) + '\n');
  };
  const one = async (line) => {
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      return { error: `request is not JSON: ${e.message}`, name: 'BadRequest' };
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      return { error: 'request must be a JSON object', name: 'BadRequest' };
    }
    try {
      return await handle(req);
    } catch (e) {
      if (e instanceof PeerError) return { error: e.message, name: e.name, ...e.extra };
      const message = e && e.message ? e.message : String(e);
      return { error: message || 'error', name: errorName(e) };
    }
  };
  rl.on('line', (line) => {
    chain = chain.then(() => one(line)).then(reply, (e) => reply({ error: String(e), name: 'Internal' }));
  });
  rl.on('close', () => {
    chain.then(() => {
      process.exitCode = 0;
    });
  });
}

/** Parses `--flag` / `--flag value` arguments into an object. */
export function parseArgs(argv, known) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!known.has(a)) {
      process.stderr.write(`unknown argument ${a}\n`);
      process.exit(2);
    }
    if (known.get(a) === 'value') {
      if (i + 1 >= argv.length) {
        process.stderr.write(`${a} needs a value\n`);
        process.exit(2);
      }
      out[a] = argv[++i];
    } else out[a] = true;
  }
  return out;
}

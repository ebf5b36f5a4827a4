// Schema libraries on the message path: parse + validate of Twilio `media`, `start` and `mark`
// messages with today's @callgate/protocol parser against zod 4 (plain and `z.compile`), valibot,
// @sinclair/typebox's TypeCompiler, ajv (compiled) and arktype, each schema holding the same checks
// as `validateTwilioInbound` (every sample below is accepted or refused alike by all, checked first).
// Also the outbound `media` serializer, since a call both reads and writes 50 audio messages a second.
//
// The libraries are not dependencies of the repo (the decision in README.md, "Schema libraries", was
// not to adopt one); install them outside it first, then run after `npm run build`:
//   npm install --prefix /tmp/callgate-schema-bench zod@4 valibot@1 @sinclair/typebox@0.34 ajv@8 arktype@2
//   flock /work/coord/bench.lock node test/bench/schema.bench.js [--libs=/tmp/callgate-schema-bench] [--quick]
// A library that is not found is left out of the table (said so on stderr); today's rows always run.
import { readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  TwilioMediaSerializer,
  parseSansPbxInbound,
  parseTwilioInbound,
  serializeTwilioOutbound,
  validateTwilioInbound,
} from '../../packages/protocol/dist/index.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? true];
  }),
);
const QUICK = Boolean(args.quick);
const LIBS = typeof args.libs === 'string' ? args.libs : join(tmpdir(), 'callgate-schema-bench');
const ROUNDS = QUICK ? 3 : 9;
const BATCH = QUICK ? 20_000 : 100_000;
/** Media worker CPU per call-second today (media.bench.js, parrot agent), the budget we share. */
const CALL_CPU_NS_PER_SECOND = 1.9e6;
/** Inbound audio messages per call-second (20 ms frames); the same number goes out. */
const AUDIO_MESSAGES_PER_SECOND = 50;

// ---- Samples: exactly as Twilio writes them --------------------------------------------------------

const STREAM_SID = 'MZ18ad3ab5a668481ce02b83e7395059f0';
const payload = Buffer.from(Array.from({ length: 160 }, (_, i) => (i * 37) & 0xff)).toString(
  'base64',
);
const MEDIA_TEXT = `{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"${payload}"},"streamSid":"${STREAM_SID}"}`;
const START_TEXT = JSON.stringify({
  event: 'start',
  sequenceNumber: '1',
  start: {
    accountSid: 'AC00000000000000000000000000000000',
    streamSid: STREAM_SID,
    callSid: 'CA00000000000000000000000000000000',
    tracks: ['inbound', 'outbound'],
    mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    customParameters: { token: 'v1.abc.def', from: '+15550000000' },
  },
  streamSid: STREAM_SID,
});
const MARK_TEXT = `{"event":"mark","sequenceNumber":"4","streamSid":"${STREAM_SID}","mark":{"name":"utt-17:last"}}`;
/** Same content as MEDIA_TEXT, other key order: today's fast path does not take it. */
const MEDIA_REORDERED = JSON.stringify({
  event: 'media',
  streamSid: STREAM_SID,
  sequenceNumber: '4',
  media: { track: 'inbound', chunk: '2', timestamp: '5', payload },
});

const edit = (text, change) => {
  const m = JSON.parse(text);
  change(m);
  return JSON.stringify(m);
};
/** Every check of validateTwilioInbound that these three messages exercise, once each. */
const BAD = [
  '[]',
  '{"event":1}',
  '{"event":"nope","streamSid":"x"}',
  edit(MEDIA_TEXT, (m) => delete m.media),
  edit(MEDIA_TEXT, (m) => (m.media = [])),
  edit(MEDIA_TEXT, (m) => (m.streamSid = '')),
  edit(MEDIA_TEXT, (m) => (m.streamSid = 7)),
  edit(MEDIA_TEXT, (m) => (m.sequenceNumber = 4)),
  edit(MEDIA_TEXT, (m) => (m.sequenceNumber = '4a')),
  edit(MEDIA_TEXT, (m) => (m.sequenceNumber = '12345678901234567')),
  edit(MEDIA_TEXT, (m) => (m.media.track = 'both')),
  edit(MEDIA_TEXT, (m) => (m.media.chunk = '')),
  edit(MEDIA_TEXT, (m) => (m.media.timestamp = '-1')),
  edit(MEDIA_TEXT, (m) => (m.media.payload = null)),
  edit(MARK_TEXT, (m) => delete m.mark.name),
  edit(MARK_TEXT, (m) => (m.sequenceNumber = '')),
  edit(START_TEXT, (m) => (m.start.streamSid = 'MZother')),
  edit(START_TEXT, (m) => (m.start.callSid = '')),
  edit(START_TEXT, (m) => (m.start.tracks = ['inbound', 'both'])),
  edit(START_TEXT, (m) => (m.start.tracks = 'inbound')),
  edit(START_TEXT, (m) => (m.start.customParameters = { a: 1 })),
  edit(START_TEXT, (m) => (m.start.mediaFormat.encoding = 'audio/l16')),
  edit(START_TEXT, (m) => (m.start.mediaFormat.sampleRate = '8000')),
  edit(START_TEXT, (m) => delete m.start.accountSid),
];
const GOOD = [
  MEDIA_TEXT,
  MEDIA_REORDERED,
  START_TEXT,
  MARK_TEXT,
  edit(MEDIA_TEXT, (m) => (m.extra = { x: 1 })), // Twilio adds fields over time: ignored
];

// SansPBX `media` has no fast path today: every one goes JSON.parse + validateSansPbxInbound, whose
// lenient reading normalizes ids to strings and numeric strings to numbers (see sanspbx.ts).
const PCM_PAYLOAD = Buffer.alloc(320, 7).toString('base64'); // 20 ms of PCM16 at 8 kHz
const SANSPBX_MEDIA_TEXT = `{"event":"media","streamId":734211,"channelId":"ch-17","callId":"c-9","chunk":"12","payload":"${PCM_PAYLOAD}"}`;
const SANSPBX_GOOD = [
  SANSPBX_MEDIA_TEXT,
  `{"event":"media","payload":"${PCM_PAYLOAD}"}`,
  `{"event":"media","chunk":3,"streamId":null,"payload":"${PCM_PAYLOAD}"}`,
];
const SANSPBX_BAD = [
  '{"event":"media"}',
  `{"event":"media","payload":7}`,
  `{"event":"media","chunk":"1x","payload":"${PCM_PAYLOAD}"}`,
  `{"event":"media","streamId":"","payload":"${PCM_PAYLOAD}"}`,
  `{"event":"media","callId":{},"payload":"${PCM_PAYLOAD}"}`,
];
/** SansPBX media parsers: today's, then each library that can normalize like it (not check-only ones). */
const sansImpls = [{ name: 'today: parseSansPbxInbound', parse: parseSansPbxInbound }];

// ---- The libraries, from outside the repo ------------------------------------------------------

/** Import a package installed under LIBS/node_modules (its ESM entry when it has one). */
async function load(name, subpath = '.') {
  const dir = join(LIBS, 'node_modules', name);
  const pkgFile = join(dir, 'package.json');
  if (!existsSync(pkgFile)) return undefined;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  const pick = (e) => {
    if (typeof e === 'string') return e;
    if (!e || typeof e !== 'object') return undefined;
    for (const c of ['import', 'node', 'default', 'require']) {
      const r = pick(e[c]);
      if (r) return r;
    }
    return undefined;
  };
  const entry = pkg.exports ? pick(pkg.exports[subpath]) : (pkg.module ?? pkg.main ?? 'index.js');
  if (!entry) return undefined;
  const mod = await import(pathToFileURL(join(dir, entry)).href);
  return {
    mod: mod.default && Object.keys(mod).length <= 2 ? mod.default : mod,
    version: pkg.version,
  };
}

const DEC = '^\\d{1,16}$';
const DEC_RE = /^\d{1,16}$/;

/** Each implementation: parse(text) returns the message or throws. */
const impls = [
  {
    name: 'today: parseTwilioInbound',
    note: 'production path (media: exact-layout fast path, others: JSON.parse + validate)',
    parse: parseTwilioInbound,
  },
  {
    name: 'today: JSON.parse + validateTwilioInbound',
    note: 'the general path every non-canonical message takes',
    parse: (t) => validateTwilioInbound(JSON.parse(t)),
  },
  {
    name: 'JSON.parse alone (floor, no checks)',
    floor: true,
    parse: (t) => JSON.parse(t),
  },
];
const versions = {};

async function addZod() {
  const lib = await load('zod');
  if (!lib) return missing('zod');
  const { z } = lib.mod.z ? lib.mod : { z: lib.mod };
  versions.zod = lib.version;
  const dec = z.string().regex(DEC_RE);
  const sid = z.string().min(1);
  const track = z.enum(['inbound', 'outbound']);
  const schema = z.discriminatedUnion('event', [
    z.object({ event: z.literal('connected'), protocol: z.literal('Call'), version: z.string() }),
    z
      .object({
        event: z.literal('start'),
        sequenceNumber: dec,
        streamSid: sid,
        start: z.object({
          streamSid: sid,
          accountSid: z.string(),
          callSid: sid,
          tracks: z.array(track),
          customParameters: z.record(z.string(), z.string()),
          mediaFormat: z.object({
            encoding: z.literal('audio/x-mulaw'),
            sampleRate: z.number(),
            channels: z.number(),
          }),
        }),
      })
      .refine((m) => m.start.streamSid === m.streamSid, { path: ['start', 'streamSid'] }),
    z.object({
      event: z.literal('media'),
      sequenceNumber: dec,
      streamSid: sid,
      media: z.object({ track, chunk: dec, timestamp: dec, payload: z.string() }),
    }),
    z.object({
      event: z.literal('dtmf'),
      sequenceNumber: dec,
      streamSid: sid,
      dtmf: z.object({ track: z.literal('inbound_track'), digit: z.string().min(1) }),
    }),
    z.object({
      event: z.literal('mark'),
      sequenceNumber: dec,
      streamSid: sid,
      mark: z.object({ name: z.string() }),
    }),
    z.object({
      event: z.literal('stop'),
      sequenceNumber: dec,
      streamSid: sid,
      stop: z.object({ accountSid: z.string(), callSid: z.string() }),
    }),
  ]);
  impls.push({
    name: `zod ${lib.version} (schema.parse)`,
    lib: true,
    parse: (t) => schema.parse(JSON.parse(t)),
    outbound: (m) => JSON.stringify(outboundZod.parse(m)),
  });
  const outboundZod = z.object({
    event: z.literal('media'),
    streamSid: sid,
    media: z.object({ payload: z.string() }),
  });
  const id = z.union([z.string().min(1), z.number().transform(String)]);
  const numeric = z.union([
    z.number(),
    z
      .string()
      .regex(/^-?\d+(\.\d+)?$/)
      .transform(Number),
  ]);
  const sansMedia = z.object({
    event: z.literal('media'),
    streamId: id.nullish(),
    channelId: id.nullish(),
    callId: id.nullish(),
    payload: z.string(),
    chunk: numeric.nullish(),
  });
  sansImpls.push({
    name: `zod ${lib.version} (schema.parse)`,
    parse: (t) => sansMedia.parse(JSON.parse(t)),
  });
  if (typeof z.compile === 'function') {
    const sansCompiled = z.compile(sansMedia);
    sansImpls.push({
      name: `zod ${lib.version} (z.compile)`,
      parse: (t) => sansCompiled.parse(JSON.parse(t)),
    });

    let compiled;
    let how = 'z.compile(schema, { strict: true }): the whole schema compiled';
    try {
      compiled = z.compile(schema, { strict: true });
    } catch (err) {
      // Part of the schema (the start refine) is not compilable: zod's own fallback keeps the
      // runtime parser for that part.
      how = `z.compile, partial: ${String(err.message ?? err).slice(0, 60)}`;
      compiled = z.compile(schema);
    }
    const compiledOut = z.compile(outboundZod);
    impls.push({
      name: `zod ${lib.version} (z.compile)`,
      note: how,
      lib: true,
      parse: (t) => compiled.parse(JSON.parse(t)),
      outbound: (m) => JSON.stringify(compiledOut.parse(m)),
    });
  }
}

async function addValibot() {
  const lib = await load('valibot');
  if (!lib) return missing('valibot');
  const v = lib.mod;
  versions.valibot = lib.version;
  const dec = v.pipe(v.string(), v.regex(DEC_RE));
  const sid = v.pipe(v.string(), v.minLength(1));
  const track = v.picklist(['inbound', 'outbound']);
  const schema = v.pipe(
    v.variant('event', [
      v.object({ event: v.literal('connected'), protocol: v.literal('Call'), version: v.string() }),
      v.object({
        event: v.literal('start'),
        sequenceNumber: dec,
        streamSid: sid,
        start: v.object({
          streamSid: sid,
          accountSid: v.string(),
          callSid: sid,
          tracks: v.array(track),
          customParameters: v.record(v.string(), v.string()),
          mediaFormat: v.object({
            encoding: v.literal('audio/x-mulaw'),
            sampleRate: v.pipe(v.number(), v.finite()),
            channels: v.pipe(v.number(), v.finite()),
          }),
        }),
      }),
      v.object({
        event: v.literal('media'),
        sequenceNumber: dec,
        streamSid: sid,
        media: v.object({ track, chunk: dec, timestamp: dec, payload: v.string() }),
      }),
      v.object({
        event: v.literal('dtmf'),
        sequenceNumber: dec,
        streamSid: sid,
        dtmf: v.object({
          track: v.literal('inbound_track'),
          digit: v.pipe(v.string(), v.minLength(1)),
        }),
      }),
      v.object({
        event: v.literal('mark'),
        sequenceNumber: dec,
        streamSid: sid,
        mark: v.object({ name: v.string() }),
      }),
      v.object({
        event: v.literal('stop'),
        sequenceNumber: dec,
        streamSid: sid,
        stop: v.object({ accountSid: v.string(), callSid: v.string() }),
      }),
    ]),
    v.check((m) => m.event !== 'start' || m.start.streamSid === m.streamSid, 'start.streamSid'),
  );
  const outbound = v.object({
    event: v.literal('media'),
    streamSid: sid,
    media: v.object({ payload: v.string() }),
  });
  const id = v.union([
    v.pipe(v.string(), v.minLength(1)),
    v.pipe(v.number(), v.finite(), v.transform(String)),
  ]);
  const numeric = v.union([
    v.pipe(v.number(), v.finite()),
    v.pipe(v.string(), v.regex(/^-?\d+(\.\d+)?$/), v.transform(Number)),
  ]);
  const sansMedia = v.object({
    event: v.literal('media'),
    streamId: v.nullish(id),
    channelId: v.nullish(id),
    callId: v.nullish(id),
    payload: v.string(),
    chunk: v.nullish(numeric),
  });
  sansImpls.push({
    name: `valibot ${lib.version} (v.parse)`,
    parse: (t) => v.parse(sansMedia, JSON.parse(t)),
  });
  impls.push({
    name: `valibot ${lib.version} (v.parse)`,
    lib: true,
    parse: (t) => v.parse(schema, JSON.parse(t)),
    outbound: (m) => JSON.stringify(v.parse(outbound, m)),
  });
}

/** JSON Schema of each inbound event, for TypeBox and ajv (dispatch on `event` by hand). */
function jsonSchemas(T) {
  const dec = T.String({ pattern: DEC });
  const sid = T.String({ minLength: 1 });
  const track = T.Union([T.Literal('inbound'), T.Literal('outbound')]);
  const obj = (props) => T.Object(props, { additionalProperties: true });
  return {
    connected: obj({
      event: T.Literal('connected'),
      protocol: T.Literal('Call'),
      version: T.String(),
    }),
    start: obj({
      event: T.Literal('start'),
      sequenceNumber: dec,
      streamSid: sid,
      start: obj({
        streamSid: sid,
        accountSid: T.String(),
        callSid: sid,
        tracks: T.Array(track),
        customParameters: T.Record(T.String(), T.String()),
        mediaFormat: obj({
          encoding: T.Literal('audio/x-mulaw'),
          sampleRate: T.Number(),
          channels: T.Number(),
        }),
      }),
    }),
    media: obj({
      event: T.Literal('media'),
      sequenceNumber: dec,
      streamSid: sid,
      media: obj({ track, chunk: dec, timestamp: dec, payload: T.String() }),
    }),
    dtmf: obj({
      event: T.Literal('dtmf'),
      sequenceNumber: dec,
      streamSid: sid,
      dtmf: obj({ track: T.Literal('inbound_track'), digit: T.String({ minLength: 1 }) }),
    }),
    mark: obj({
      event: T.Literal('mark'),
      sequenceNumber: dec,
      streamSid: sid,
      mark: obj({ name: T.String() }),
    }),
    stop: obj({
      event: T.Literal('stop'),
      sequenceNumber: dec,
      streamSid: sid,
      stop: obj({ accountSid: T.String(), callSid: T.String() }),
    }),
  };
}

/** Check-only validators (TypeBox, ajv): the event lookup and the start cross-check by hand. */
function dispatch(checks) {
  return (text) => {
    const m = JSON.parse(text);
    const check =
      typeof m === 'object' &&
      m !== null &&
      typeof m.event === 'string' &&
      Object.hasOwn(checks, m.event)
        ? checks[m.event]
        : undefined;
    if (!check || !check(m)) throw new Error('invalid');
    if (m.event === 'start' && m.start.streamSid !== m.streamSid) throw new Error('invalid');
    return m;
  };
}

async function addTypeBox() {
  const lib = await load('@sinclair/typebox');
  const compiler = await load('@sinclair/typebox', './compiler');
  if (!lib || !compiler) return missing('@sinclair/typebox');
  versions.typebox = lib.version;
  const { Type } = lib.mod;
  const { TypeCompiler } = compiler.mod;
  const checks = Object.fromEntries(
    Object.entries(jsonSchemas(Type)).map(([k, s]) => {
      const c = TypeCompiler.Compile(s);
      return [k, (m) => c.Check(m)];
    }),
  );
  const out = TypeCompiler.Compile(
    Type.Object(
      {
        event: Type.Literal('media'),
        streamSid: Type.String({ minLength: 1 }),
        media: Type.Object({ payload: Type.String() }, { additionalProperties: false }),
      },
      { additionalProperties: false },
    ),
  );
  impls.push({
    name: `@sinclair/typebox ${lib.version} (TypeCompiler.Check)`,
    note: 'check only: returns the JSON.parse result, unknown fields kept',
    lib: true,
    sameObject: true,
    parse: dispatch(checks),
    outbound: (m) => {
      if (!out.Check(m)) throw new Error('invalid');
      return JSON.stringify(m);
    },
  });
}

async function addAjv() {
  const lib = await load('ajv');
  const tb = await load('@sinclair/typebox'); // only to write the same JSON Schema once
  if (!lib || !tb) return missing('ajv');
  versions.ajv = lib.version;
  const Ajv = lib.mod.default ?? lib.mod.Ajv ?? lib.mod;
  const ajv = new Ajv({ allErrors: false });
  const checks = Object.fromEntries(
    Object.entries(jsonSchemas(tb.mod.Type)).map(([k, s]) => [k, ajv.compile(s)]),
  );
  impls.push({
    name: `ajv ${lib.version} (ajv.compile)`,
    note: 'check only: returns the JSON.parse result, unknown fields kept',
    lib: true,
    sameObject: true,
    parse: dispatch(checks),
  });
}

async function addArkType() {
  const lib = await load('arktype');
  if (!lib) return missing('arktype');
  versions.arktype = lib.version;
  const { type } = lib.mod;
  const dec = type(/^\d{1,16}$/);
  const sid = type('string > 0');
  const track = type("'inbound' | 'outbound'");
  const start = type({
    event: "'start'",
    sequenceNumber: dec,
    streamSid: sid,
    start: {
      streamSid: sid,
      accountSid: 'string',
      callSid: sid,
      tracks: track.array(),
      customParameters: type.Record('string', 'string'),
      mediaFormat: { encoding: "'audio/x-mulaw'", sampleRate: 'number', channels: 'number' },
    },
  }).narrow((m, ctx) => m.start.streamSid === m.streamSid || ctx.mustBe('one stream'));
  const schema = type({ event: "'connected'", protocol: "'Call'", version: 'string' })
    .or(start)
    .or({
      event: "'media'",
      sequenceNumber: dec,
      streamSid: sid,
      media: { track, chunk: dec, timestamp: dec, payload: 'string' },
    })
    .or({
      event: "'dtmf'",
      sequenceNumber: dec,
      streamSid: sid,
      dtmf: { track: "'inbound_track'", digit: 'string > 0' },
    })
    .or({ event: "'mark'", sequenceNumber: dec, streamSid: sid, mark: { name: 'string' } })
    .or({
      event: "'stop'",
      sequenceNumber: dec,
      streamSid: sid,
      stop: { accountSid: 'string', callSid: 'string' },
    });
  impls.push({
    name: `arktype ${lib.version} (type(...))`,
    note: 'returns the JSON.parse result, unknown fields kept',
    lib: true,
    sameObject: true,
    parse: (t) => {
      const r = schema(JSON.parse(t));
      if (r instanceof type.errors) throw new Error(r.summary);
      return r;
    },
  });
}

const missingLibs = [];
function missing(name) {
  missingLibs.push(name);
}

await addZod();
await addValibot();
await addTypeBox();
await addAjv();
await addArkType();
if (missingLibs.length > 0) {
  console.error(
    `not found under ${LIBS}/node_modules (left out): ${missingLibs.join(', ')}; see the header of this file`,
  );
}

// ---- Same checks: every implementation accepts GOOD and refuses BAD ------------------------------

let mismatch = 0;
for (const impl of impls) {
  if (impl.floor) continue;
  for (const text of GOOD) {
    let got;
    try {
      got = impl.parse(text);
    } catch (err) {
      console.error(
        `MISMATCH ${impl.name} refuses a good message: ${err.message}\n  ${text.slice(0, 120)}`,
      );
      mismatch++;
      continue;
    }
    const want = validateTwilioInbound(JSON.parse(text));
    if (!impl.sameObject && !isDeepStrictEqual(got, want)) {
      console.error(`MISMATCH ${impl.name} returns another value for ${text.slice(0, 60)}`);
      mismatch++;
    }
  }
  for (const text of BAD) {
    let accepted = false;
    try {
      impl.parse(text);
      accepted = true;
    } catch {
      // refused, as it should be
    }
    if (accepted) {
      console.error(`MISMATCH ${impl.name} accepts a bad message: ${text.slice(0, 160)}`);
      mismatch++;
    }
  }
}
// A library leaves an absent or null id as undefined/null where today's parser leaves the key out:
// compare as JSON, which drops undefined, after dropping nulls.
const asJson = (m) => JSON.stringify(m, (_k, val) => (val === null ? undefined : val));
for (const impl of sansImpls.slice(1)) {
  for (const text of SANSPBX_GOOD) {
    let got;
    try {
      got = impl.parse(text);
    } catch (err) {
      console.error(`MISMATCH ${impl.name} refuses a good SansPBX message: ${err.message}`);
      mismatch++;
      continue;
    }
    if (asJson(got) !== asJson(parseSansPbxInbound(text))) {
      console.error(`MISMATCH ${impl.name} normalizes ${text.slice(0, 60)} otherwise`);
      mismatch++;
    }
  }
  for (const text of SANSPBX_BAD) {
    let accepted = false;
    try {
      impl.parse(text);
      accepted = true;
    } catch {
      // refused
    }
    if (accepted) {
      console.error(`MISMATCH ${impl.name} accepts a bad SansPBX message: ${text.slice(0, 100)}`);
      mismatch++;
    }
  }
}
const checked = impls.filter((i) => !i.floor).length;
console.error(
  `same checks: ${checked} Twilio implementations × ${GOOD.length} good + ${BAD.length} bad messages, ` +
    `${sansImpls.length - 1} SansPBX × ${SANSPBX_GOOD.length} + ${SANSPBX_BAD.length}: ${mismatch} mismatches`,
);
if (mismatch > 0) {
  console.error(
    `${mismatch} mismatches: the schemas do not hold today's checks; figures not comparable`,
  );
  process.exitCode = 1;
}

// ---- Timing: interleaved rounds, median ns per message ------------------------------------------

// CPU time of this process (all its threads: GC helpers count), not wall time: on a shared machine
// a descheduled benchmark would otherwise charge other jobs' time to whichever row was running.
let sink = 0;
function timeOnce(fn, arg, n) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = fn(arg);
    sink ^= typeof r === 'string' ? r.length : r.event.length;
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1e3) / n;
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

// Allocations: bytes of heap grown by a block of calls right after a full GC, median over blocks
// (a block that saw a scavenge grows less and is dropped). Node 20 has no allocation counter.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
function bytesPerCall(fn, arg) {
  const n = 200;
  const samples = [];
  for (let b = 0; b < 15; b++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const r = fn(arg);
      sink ^= typeof r === 'string' ? r.length : r.event.length;
    }
    const grown = process.memoryUsage().heapUsed - before;
    if (grown > 0) samples.push(grown / n);
  }
  return samples.length ? median(samples) : NaN;
}

/** Busy and total jiffies of the whole machine (every core, every process), from /proc/stat. */
function machineTicks() {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = cpu[3] + (cpu[4] ?? 0);
    const total = cpu.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

const kinds = [
  ['media', MEDIA_TEXT],
  ['media, other key order', MEDIA_REORDERED],
  ['start', START_TEXT],
  ['mark', MARK_TEXT],
];
const serializer = new TwilioMediaSerializer(STREAM_SID);
const outboundMsg = { event: 'media', streamSid: STREAM_SID, media: { payload } };
const outImpls = [
  {
    name: 'today: TwilioMediaSerializer.serialize',
    fn: (p) => serializer.serialize(p),
    arg: payload,
  },
  { name: 'today: serializeTwilioOutbound', fn: serializeTwilioOutbound, arg: outboundMsg },
  { name: 'JSON.stringify alone (no checks)', fn: (m) => JSON.stringify(m), arg: outboundMsg },
  ...impls
    .filter((i) => i.outbound)
    .map((i) => ({ name: `${i.name}, then JSON.stringify`, fn: i.outbound, arg: outboundMsg })),
];

// Warm every path first, so the first timed round is not a JIT round.
for (const impl of impls) for (const [, text] of kinds) timeOnce(impl.parse, text, BATCH / 4);
for (const o of outImpls) timeOnce(o.fn, o.arg, BATCH / 4);
for (const o of sansImpls) timeOnce(o.parse, SANSPBX_MEDIA_TEXT, BATCH / 4);
const busyBefore = machineTicks();

const ns = new Map(); // `${impl}|${kind}` -> samples
for (let round = 0; round < ROUNDS; round++) {
  const order = [...impls];
  for (let i = order.length - 1; i > 0; i--) {
    const j = (round * 7 + i * 3) % (i + 1); // a fixed shuffle per round: no order bias
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (const impl of order) {
    for (const [kind, text] of kinds) {
      const key = `${impl.name}|${kind}`;
      if (!ns.has(key)) ns.set(key, []);
      ns.get(key).push(timeOnce(impl.parse, text, kind === 'start' ? BATCH / 4 : BATCH));
    }
  }
  for (const o of outImpls) {
    const key = `out|${o.name}`;
    if (!ns.has(key)) ns.set(key, []);
    ns.get(key).push(timeOnce(o.fn, o.arg, BATCH));
  }
  for (const o of sansImpls) {
    const key = `sans|${o.name}`;
    if (!ns.has(key)) ns.set(key, []);
    ns.get(key).push(timeOnce(o.parse, SANSPBX_MEDIA_TEXT, BATCH));
  }
}
const busyAfter = machineTicks();

// ---- Report ----------------------------------------------------------------------------------

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const get = (name, kind) => median(ns.get(`${name}|${kind}`));
const base = impls[0].name;
/** Median over rounds of the ratio within each round (rows of one round ran seconds apart). */
const ratio = (key, baseKey) => {
  const b = ns.get(baseKey);
  return median(ns.get(key).map((v, r) => v / b[r]));
};
const lines = [];
const out = (s = '') => {
  lines.push(s);
  console.log(s);
};
out(
  `# Schema libraries on the Twilio message path (node ${process.version}, ${ROUNDS} rounds, median)`,
);
out();
out(
  `ns per message (parse + validate, from the text); ratio to today's production parser in brackets; ` +
    `B/msg: heap bytes per media message; budget: ${AUDIO_MESSAGES_PER_SECOND} inbound media messages ` +
    `a second against the media worker's ${CALL_CPU_NS_PER_SECOND / 1e6} ms CPU per call-second`,
);
out();
out(
  '| implementation | media | media, other key order | start | mark | B/msg (media) | budget share (media) |',
);
out('|---|---|---|---|---|---|---|');
for (const impl of impls) {
  const cells = kinds.map(([kind]) => {
    const v = get(impl.name, kind);
    const r = ratio(`${impl.name}|${kind}`, `${base}|${kind}`);
    return `${fmt(v)} (${fmt(r, 1)}×)`;
  });
  const bytes = bytesPerCall(impl.parse, MEDIA_TEXT);
  const share = (get(impl.name, 'media') * AUDIO_MESSAGES_PER_SECOND) / CALL_CPU_NS_PER_SECOND;
  out(`| ${impl.name} | ${cells.join(' | ')} | ${fmt(bytes)} | ${fmt(share * 100, 2)} % |`);
}
out();
out('Outbound `media` (one per 20 ms frame towards Twilio):');
out();
out('| implementation | ns per message | ratio | B/msg | budget share |');
out('|---|---|---|---|---|');
for (const o of outImpls) {
  const v = median(ns.get(`out|${o.name}`));
  const share = (v * AUDIO_MESSAGES_PER_SECOND) / CALL_CPU_NS_PER_SECOND;
  const r = ratio(`out|${o.name}`, `out|${outImpls[0].name}`);
  out(
    `| ${o.name} | ${fmt(v)} | ${fmt(r, 1)}× | ${fmt(bytesPerCall(o.fn, o.arg))} | ${fmt(share * 100, 2)} % |`,
  );
}
out();
out('SansPBX `media` (no fast path today; ids and numeric strings normalized):');
out();
out('| implementation | ns per message | ratio | B/msg | budget share |');
out('|---|---|---|---|---|');
for (const o of sansImpls) {
  const v = median(ns.get(`sans|${o.name}`));
  const share = (v * AUDIO_MESSAGES_PER_SECOND) / CALL_CPU_NS_PER_SECOND;
  const r = ratio(`sans|${o.name}`, `sans|${sansImpls[0].name}`);
  out(
    `| ${o.name} | ${fmt(v)} | ${fmt(r, 1)}× | ${fmt(bytesPerCall(o.parse, SANSPBX_MEDIA_TEXT))} | ${fmt(share * 100, 2)} % |`,
  );
}
if (busyBefore && busyAfter) {
  const busy = (busyAfter.busy - busyBefore.busy) / (busyAfter.total - busyBefore.total);
  out();
  out(`machine busy during the timed rounds: ${fmt(busy * 100)} % (all cores, all processes)`);
  if (busy > 0.85) {
    out('WARNING: the machine was saturated: compare ratios within this run, not absolute figures');
  }
}
const notes = impls.filter((i) => i.note).map((i) => `- ${i.name}: ${i.note}`);
if (notes.length) {
  out();
  for (const n of notes) out(n);
}
if (sink === 0.5) console.log(sink); // keep the results alive

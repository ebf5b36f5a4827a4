export type Provider = 'twilio' | 'sanspbx';

/** One caller utterance on the caller's timeline (ms from the first audio message). */
export interface Segment {
  startMs: number;
  endMs: number;
}

export interface ScheduledDtmf {
  atMs: number;
  digit: string;
}

/** Live events of one simulated call, for tests that react while the call runs. */
export type SimEvent =
  /** The upgrade succeeded and the opening messages (`connected`, `start`, ...) are sent. */
  | { type: 'open'; provider: Provider; callSid: string; streamSid: string; url: string }
  /** An audio message from the worker was buffered for playback. */
  | {
      type: 'media';
      atMs: number;
      samples: number;
      audioMessagesReceived: number;
      /** Audio samples already played out of the speaker when this message arrived. */
      samplesPlayed: number;
    }
  /**
   * A mark was echoed back: its audio has played (`cleared: false`) or a `clear` dropped it.
   * `samplesPlayed` counts worker audio played before the echo, so tests can check the order.
   */
  | { type: 'mark'; atMs: number; name: string; cleared: boolean; samplesPlayed: number }
  /** The worker sent `clear`: the buffer was dropped and pending marks echoed. */
  | { type: 'clear'; atMs: number; droppedSamples: number; marksAcked: number }
  /** Non-silent worker audio started playing after silence. */
  | { type: 'reply-start'; atMs: number; utteranceIndex: number | null; latencyMs: number | null }
  /**
   * The server closed the stream with a close frame while the call goes on: the caller now asks
   * the `<Connect action>` URL where to go next (Twilio's behaviour). Not emitted for a TCP cut.
   */
  | { type: 'stream-end'; atMs: number; code: number; reason: string; streamSid: string }
  /** A new stream of the same call is open (an 'open' with the new streamSid came just before). */
  | {
      type: 'reconnect';
      atMs: number;
      streamSid: string;
      url: string;
      /** Wall time from the old stream's close to the new stream's 101. */
      gapMs: number;
      reconnects: number;
    }
  /** The call is over (last stream closed, or the action TwiML ended it). */
  | { type: 'close'; code: number | null; reason: string; closedBy: 'caller' | 'server' }
  /** A message from the worker failed strict validation (Twilio would log 31950/31951). */
  | { type: 'protocol-error'; code: string; message: string };

export interface SimulateCallOptions {
  /** ws(s)://host/media-stream/CA... (bare /media-stream for sanspbx); '' = take it from the TwiML. */
  url: string;
  provider?: Provider;
  /** Caller audio, mono PCM16 at `audioSampleRate`; resampled to the line rate. */
  audio?: Int16Array;
  audioSampleRate?: number;
  /** Caller utterances; default: detected from the audio (≥ 300 ms of digital silence between). */
  segments?: Segment[];
  dtmf?: ScheduledDtmf[];
  customParameters?: Record<string, string>;
  callSid?: string;
  accountSid?: string;
  from?: string;
  to?: string;
  /** Voice-webhook URL to POST before connecting; default false (no webhook) in the library. */
  twimlUrl?: string | false;
  /** Signs the webhook and the upgrade with `X-Twilio-Signature`. */
  authToken?: string;
  /** URL signed for the upgrade (the public wss URL); default: `url` without its query. */
  signatureUrl?: string;
  headers?: Record<string, string>;
  /** The caller hangs up (stop + close) at this time; default: audio length + tailMs. */
  hangupAfterMs?: number;
  tailMs?: number;
  sansPbxSampleRate?: number;
  connectTimeoutMs?: number;
  /** Before the call is up: reject with SIM_ERR_ABORTED. During it: hang up and resolve. */
  signal?: AbortSignal;
  onEvent?: (e: SimEvent) => void;
  /**
   * Follow `<Connect action>` like Twilio when the server closes a stream with a close frame
   * (default true; only with a voice webhook whose TwiML has an action).
   */
  followAction?: boolean;
  /** Bound on new streams per call (default 10), whatever the action handler answers. */
  maxReconnects?: number;
}

export interface ReplyLatency {
  utteranceIndex: number;
  utteranceEndMs: number;
  firstReplyMs: number | null;
  latencyMs: number | null;
}

export interface CallSummary {
  callSid: string;
  streamSid: string;
  provider: Provider;
  durationMs: number;
  /** 20 ms audio frames sent, one audio message each. */
  audioFramesSent: number;
  /** Worker audio received, in 20 ms audio frames (rounded). */
  audioFramesReceived: number;
  /** Audio messages (`media`, SansPBX `reverse-media`) received from the worker. */
  audioMessagesReceived: number;
  marksReceived: number;
  /** Marks the caller acked (echoed back, as Twilio does once their audio played or was cleared). */
  marksAcked: number;
  /** Of `marksAcked`, those acked because a `clear` dropped their audio. */
  marksAckedOnClear: number;
  clears: number;
  dtmfSent: number;
  replies: ReplyLatency[];
  protocolErrors: Array<{ code: string; message: string }>;
  closeCode: number | null;
  closeReason: string;
  closedBy: 'caller' | 'server';
  /** What the caller heard, 8 kHz PCM16, on the caller's timeline (silence where nothing played). */
  replyAudio: Int16Array;
  replyAudioSampleRate: number;
  customParameters: Record<string, string>;
  /** Every stream of the call, in order (one unless the call was reconnected). */
  streamSids: string[];
  /** Streams opened after the first one through `<Connect action>`. */
  reconnects: number;
  /** For each reconnect: wall ms from the old stream's close to the new stream's 101. */
  reconnectGapsMs: number[];
  /** `<Connect action>` requests made. */
  actionRequests: number;
  /**
   * What the last action request answered: `stream` (a new `<Connect><Stream>`), `empty`
   * (`<Response/>`), `hangup` (`<Hangup/>` or other verbs, e.g. `<Say>`, then the end), `error`
   * (no answer or not 2xx); null when no action was requested.
   */
  actionResult: 'stream' | 'empty' | 'hangup' | 'error' | null;
}

export type Provider = 'twilio' | 'sanspbx';

/** One caller utterance on the caller's timeline (ms from the first media frame). */
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
      mediaMessagesReceived: number;
      /** Audio samples already played out of the speaker when this message arrived. */
      samplesPlayed: number;
    }
  /**
   * A mark was echoed back: its audio has played (`cleared: false`) or a `clear` dropped it.
   * `samplesPlayed` counts worker audio played before the echo, so tests can check the order.
   */
  | { type: 'mark'; atMs: number; name: string; cleared: boolean; samplesPlayed: number }
  /** The worker sent `clear`: the buffer was dropped and pending marks echoed. */
  | { type: 'clear'; atMs: number; droppedSamples: number; marksEchoed: number }
  /** Non-silent worker audio started playing after silence. */
  | { type: 'reply-start'; atMs: number; utteranceIndex: number | null; latencyMs: number | null }
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
  framesSent: number;
  framesReceived: number;
  mediaMessagesReceived: number;
  marksReceived: number;
  marksEchoed: number;
  marksEchoedOnClear: number;
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
}

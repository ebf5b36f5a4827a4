/**
 * Error catalogue of @callgate/audio. Codes are `AUDIO_ERR_<WHAT>`; callers branch on `code`.
 * All are thrown to the caller: none is answered with an HTTP status or ends a socket by itself.
 *
 * The architecture keeps this package free of other workspaces (`packages/audio → nothing`), so
 * the catalogue satisfies the shape of @callgate/runtime's `ErrorCatalogue` written out, and
 * `AudioError` extends `Error` directly with the same shape as `CallgateError` (`code`, `name`,
 * `cause`) instead of importing either from @callgate/runtime; `errorCode(err)` works on it.
 */
export const AUDIO_ERRORS = {
  /** Not a WAV file, or not 16-bit integer PCM. */
  AUDIO_ERR_WAV: {},
  /** A sample rate outside what the resamplers take. */
  AUDIO_ERR_RATE: {},
  /** An invalid argument (odd PCM16 byte count, bad tone, DTMF digit, pacer interval ...). */
  AUDIO_ERR_ARGUMENT: {},
  /** 20 ms at that rate is not a whole number of samples. */
  AUDIO_ERR_FRAME_SIZE: {},
  /** A write to a closed `WavFileWriter`. */
  AUDIO_ERR_CLOSED: {},
  /** A recording file could not be opened, written or synced. */
  AUDIO_ERR_IO: {},
} as const satisfies Record<string, { readonly status?: number; readonly close?: number }>;

export type AudioErrorCode = keyof typeof AUDIO_ERRORS;

export class AudioError extends Error {
  readonly code: AudioErrorCode;
  constructor(code: AudioErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

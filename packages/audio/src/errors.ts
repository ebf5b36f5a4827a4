/**
 * Error catalogue of @callgate/audio. Codes are `AUDIO_ERR_<WHAT>`; callers branch on `code`.
 *
 * The architecture keeps this package free of other workspaces (`packages/audio → nothing`), so
 * `AudioError` extends `Error` directly with the same shape as `CallgateError` (`code`, `name`,
 * `cause`) instead of importing it from @callgate/runtime; `errorCode(err)` works on it unchanged.
 */
export type AudioErrorCode =
  | 'AUDIO_ERR_WAV'
  | 'AUDIO_ERR_RATE'
  | 'AUDIO_ERR_ARGUMENT'
  | 'AUDIO_ERR_FRAME_SIZE'
  | 'AUDIO_ERR_CLOSED'
  | 'AUDIO_ERR_IO';

export class AudioError extends Error {
  readonly code: AudioErrorCode;
  constructor(code: AudioErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

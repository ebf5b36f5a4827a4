/**
 * Whether a mark echo that names no mark this worker sent is a bad message (counted toward
 * MAX_BAD_MESSAGES, as MEDIA_ERR_UNKNOWN_MARK). On a fresh stream it is: Twilio only echoes marks
 * it was sent, so a flood of them is hostile. On a resumed stream (the proxy moved the call here)
 * echoes of the previous worker's marks are normal and are ignored quietly.
 */
export function unknownMarkIsBadMessage(stream: { resumed: boolean }): boolean {
  return !stream.resumed;
}

import { describe, expect, it } from 'vitest';
import { detectProvider } from '../src/index.js';

describe('detectProvider', () => {
  it.each([
    ['Twilio connected', { event: 'connected', protocol: 'Call', version: '1.0.0' }, 'twilio'],
    [
      'Twilio start',
      { event: 'start', sequenceNumber: '1', start: { streamSid: 'MZ1' } },
      'twilio',
    ],
    ['Twilio media', { event: 'media', streamSid: 'MZ1', media: { payload: '' } }, 'twilio'],
    ['SansPBX answer', { event: 'answer', streamId: 's', channelId: 'c', callId: 'x' }, 'sanspbx'],
    ['SansPBX answer without ids', { event: 'answer' }, 'sanspbx'],
    ['SansPBX start with channelId', { event: 'start', channelId: 'SIP/1' }, 'sanspbx'],
    [
      'SansPBX media with top-level payload',
      { event: 'media', payload: 'AA==', chunk: 1 },
      'sanspbx',
    ],
    ['SansPBX connected with streamId', { event: 'connected', streamId: 's' }, 'sanspbx'],
    ['reverse-media', { event: 'reverse-media', payload: '' }, 'sanspbx'],
    ['bare connected', { event: 'connected' }, undefined],
    ['connected with another protocol', { event: 'connected', protocol: 'Other' }, undefined],
    ['start without streamSid', { event: 'start', start: {} }, undefined],
    ['an unknown message', { event: 'hello' }, undefined],
    ['an array', [1], undefined],
    ['null', null, undefined],
    ['a number', 5, undefined],
  ])('%s → %s', (_name, message, expected) => {
    expect(detectProvider(message)).toBe(expected);
    expect(detectProvider(JSON.stringify(message))).toBe(expected);
  });

  it.each(['', 'not json', '{"event":'])('is undefined for text that is not JSON: %j', (text) => {
    expect(detectProvider(text)).toBeUndefined();
  });
});

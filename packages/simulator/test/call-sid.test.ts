import { describe, expect, it } from 'vitest';
import { callSidFromUrl } from '../src/base-caller.js';

describe('callSidFromUrl', () => {
  it.each([
    ['ws://localhost:8080/media-stream/CAtest', 'CAtest'],
    [
      'wss://edge.example.com/media-stream/CA0123456789abcdef0123456789abcdef',
      'CA0123456789abcdef0123456789abcdef',
    ],
    ['ws://localhost:8080/media-stream/CA_1-x?ignored=1', 'CA_1-x'],
    ['ws://localhost:8080/media-stream', undefined],
    ['ws://localhost:8080/media-stream/', undefined],
    ['ws://localhost:8080/media-stream/a/b', undefined],
    ['ws://localhost:8080/other/CAtest', undefined],
    [`ws://localhost:8080/media-stream/${'x'.repeat(65)}`, undefined],
    ['not a url', undefined],
  ])('%s → %s', (url, expected) => {
    expect(callSidFromUrl(url)).toBe(expected);
  });
});

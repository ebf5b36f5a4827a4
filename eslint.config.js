import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommended],
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/packages/*/src/**', '../../packages/**', '../packages/**'],
              message: 'Import another workspace by package name (@callgate/...).',
            },
          ],
        },
      ],
    },
  },
  {
    // The browser page: plain modules and AudioWorklet processors, no build step.
    files: ['workers/test-agent/public/**/*.js'],
    languageOptions: {
      globals: { ...globals.browser, ...globals.audioWorklet },
    },
  },
  {
    files: ['**/*.js'],
    ignores: ['workers/test-agent/public/**'],
    languageOptions: { globals: globals.node },
  },
);

// Lint rules: typescript-eslint's recommended set, with `any` forbidden outright,
// and no imports from src/cli outside it (import cycles: dpdm, in make lint).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
	{ignores: ['dist/', 'node_modules/', 'bench/results/', 'bench/experiments/', '.tap/']},
	js.configs.recommended,
	...tseslint.configs.recommended,
	{
		files: ['**/*.ts'],
		rules: {
			'@typescript-eslint/no-explicit-any': 'error',
			'@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_'}],
		},
	},
	{
		// The command line turns argv into a typed configuration (src/vm/config.ts); nothing below it reads the CLI.
		files: ['src/**/*.ts'],
		ignores: ['src/cli/**'],
		rules: {
			'no-restricted-imports': [
				'error',
				{patterns: [{group: ['**/cli/*'], message: 'Nothing outside src/cli imports from src/cli: move what is shared below it.'}]},
			],
		},
	},
);

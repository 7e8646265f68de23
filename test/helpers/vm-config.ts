// A VmConfig as the command line gives it with no --pv- option (src/cli/pv-options.ts),
// with what a test changes, so that a new option's default reaches every test at once.
import {parsePvOptions} from '../../src/cli/pv-options.js';
import type {VmConfig} from '../../src/vm/config.js';

export const vmConfig = (changes: Partial<VmConfig> = {}): VmConfig => ({...parsePvOptions([]), ...changes});

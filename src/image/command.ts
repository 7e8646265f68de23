// `pvrun image build|path|list [--flavour NAME]`: the guest images from the command line.
import type {CommandModule} from 'yargs';
import {UsageError} from '../util/errors.js';
import {cacheRoot, packageRoot} from '../util/paths.js';
import {createProgress} from '../util/progress.js';
import {ensureImage} from './build.js';
import {listCachedImages} from './cache.js';
import {defaultFlavour, listFlavours} from './spec.js';

export const imageCommand: CommandModule = {
	command: 'image [action]',
	describe: 'build, locate or list the guest images',
	builder: (y) =>
		y
			.positional('action', {choices: ['build', 'path', 'list'] as const, describe: 'what to do'})
			.option('force', {type: 'boolean', default: false, describe: 'rebuild even if the cache has the image'})
			.option('flavour', {
				type: 'string',
				default: defaultFlavour,
				requiresArg: true,
				describe: `which image: ${listFlavours(packageRoot).join(', ')} (images/flavours/)`,
			}),
	handler: async (args) => {
		const action = args['action'] as 'build' | 'path' | 'list' | undefined;
		if (action === undefined) throw new UsageError('image needs a verb: build, path or list (see pvrun image --help)');
		const progress = createProgress('pvrun image');
		if (action === 'list') {
			process.stdout.write(listImages(cacheRoot()));
			return;
		}
		const image = await ensureImage({force: args['force'] === true, progress, flavour: String(args['flavour'])});
		if (action === 'path') process.stdout.write(`${image.kernel}\n${image.initrd}\n`);
		else progress.info(`${image.fromCache ? 'cached' : 'built'} ${image.key} (kernel ${image.manifest.kernelRelease}) in ${image.dir}`);
	},
};

/** One line per cached image in `cache` (newest first): key, creation time, kernel release, size. */
export function listImages(cache: string): string {
	const images = listCachedImages(cache);
	if (images.length === 0) return `no images in ${cache}\n`;
	return images
		.map(({key, manifest}) => {
			if (!manifest) return `${key}  (no manifest: corrupt, rebuilt on next use)\n`;
			if (typeof manifest.files !== 'object' || manifest.files === null) return `${key}  (manifest does not match: corrupt, rebuilt on next use)\n`;
			const mb = Object.values(manifest.files).reduce((sum, f) => sum + f.size, 0) / 1e6;
			return `${key}  ${manifest.created}  kernel ${manifest.kernelRelease}  ${mb.toFixed(1)} MB\n`;
		})
		.join('');
}

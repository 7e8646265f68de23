// Every relative link in the README and docs/ leads somewhere: the file exists, and a
// #fragment names a heading of the target as GitHub makes its anchors.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';

/** GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces as dashes. */
function anchorOf(heading: string): string {
	return heading
		.trim()
		.toLowerCase()
		.replace(/`/g, '')
		.replace(/[^\p{L}\p{N}\s_-]/gu, '')
		.replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings (a repeated heading gets -1, -2...). */
function anchors(file: string): Set<string> {
	const out = new Set<string>();
	const seen = new Map<string, number>();
	let fenced = false;
	for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
		if (line.startsWith('```')) fenced = !fenced;
		const m = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
		if (!m) continue;
		const base = anchorOf(m[1] ?? '');
		const n = seen.get(base) ?? 0;
		seen.set(base, n + 1);
		out.add(n === 0 ? base : `${base}-${n}`);
	}
	return out;
}

/** The relative link targets of a Markdown file, outside code blocks and code spans. */
function links(file: string): string[] {
	const out: string[] = [];
	let fenced = false;
	for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
		if (line.startsWith('```')) fenced = !fenced;
		if (fenced) continue;
		for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
			const target = m[1] ?? '';
			if (!/^[a-z]+:/i.test(target)) out.push(target);
		}
	}
	return out;
}

t.test('anchors as GitHub makes them', async (t) => {
	t.equal(anchorOf('The operator wins: virsh vcpupin, virsh emulatorpin, taskset'), 'the-operator-wins-virsh-vcpupin-virsh-emulatorpin-taskset');
	t.equal(anchorOf('`pvrun status`'), 'pvrun-status');
	t.equal(anchorOf("What pvrun's devices go"), 'what-pvruns-devices-go');
});

t.test('every relative link in the README and docs/ resolves', async (t) => {
	const docs = path.join(packageRoot, 'docs');
	const files = [
		path.join(packageRoot, 'README.md'),
		...fs
			.readdirSync(docs)
			.filter((f) => f.endsWith('.md'))
			.map((f) => path.join(docs, f)),
	];
	const broken: string[] = [];
	let checked = 0;
	for (const file of files)
		for (const link of links(file)) {
			checked++;
			const [target = '', fragment] = link.split('#');
			const resolved = target ? path.resolve(path.dirname(file), decodeURIComponent(target)) : file;
			const where = `${path.relative(packageRoot, file)}: ${link}`;
			if (!fs.existsSync(resolved)) broken.push(`${where} (no such file)`);
			else if (fragment && resolved.endsWith('.md') && !anchors(resolved).has(fragment)) broken.push(`${where} (no such heading)`);
		}
	t.ok(checked > 50, `${checked} relative links in ${files.length} files`);
	t.same(broken, [], 'none broken');
});

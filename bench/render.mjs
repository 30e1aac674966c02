// Re-renders a results .md from its .json (after a change to the report's layout): node bench/render.mjs FILE.json
import fs from 'node:fs';
import path from 'node:path';
import { writeReport } from './lib/report.mjs';

const file = process.argv[2];
if (!file?.endsWith('.json')) {
  console.error('usage: node bench/render.mjs bench/results/<date>-<host>.json');
  process.exit(2);
}
const j = JSON.parse(fs.readFileSync(file, 'utf8'));
const out = writeReport({ ...j, startup: j.facts.startup, outDir: path.dirname(file) });
console.log(out);

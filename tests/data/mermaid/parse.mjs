// Parses Mermaid charts with Mermaid itself (tests/export.rs): `node parse.mjs CHART...` with
// MERMAID_DIR naming a folder whose node_modules hold `mermaid` and `jsdom`. Prints, per chart, one
// JSON line: {"file", "nodes": [ids], "edges": [[from, to, label]]}; exits 1 on the first chart
// Mermaid refuses.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(path.join(process.env.MERMAID_DIR, 'package.json'));
const { JSDOM } = require('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import(pathToFileURL(require.resolve('mermaid')).href);
mermaid.initialize({ startOnLoad: false });

// A label as Mermaid draws it: its parser keeps `#name;` entities as placeholders (`ﬂ°name¶ß`),
// turned back into HTML entities when drawn, which the page then decodes.
function decode(text) {
  const html = text.replace(/ﬂ°°/g, '&#').replace(/ﬂ°/g, '&').replace(/¶ß/g, ';');
  const area = document.createElement('textarea');
  area.innerHTML = html;
  return area.value;
}

for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  try {
    await mermaid.parse(text);
  } catch (e) {
    console.error(`${file}: ${e.message || e}`);
    process.exit(1);
  }
  const db = (await mermaid.mermaidAPI.getDiagramFromText(text)).db;
  const nodes = [...db.getVertices().keys()];
  const edges = db.getEdges().map((e) => [e.start, e.end, decode(e.text)]);
  console.log(JSON.stringify({ file, nodes, edges }));
}

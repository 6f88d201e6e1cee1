// The ECMAScript side of the VoiceXML test interpreter (tests/common/vxml.rs): Node.js itself
// evaluates every expression a document holds, in VoiceXML's scope chain (session, application,
// document, dialog, anonymous) kept as real objects, one JSON request a line on stdin, one JSON
// answer a line on stdout: {"ok": value} or {"error": "message"}. The Rust side runs the form
// interpretation algorithm and asks this process for every value, condition and assignment.
'use strict';

const readline = require('node:readline');

// The scopes, innermost last: each holds its variables, and its own name refers to itself
// (`session.connection...`, `application.lastresult$`, `document.x`, `dialog.x`).
const NAMES = ['session', 'application', 'document', 'dialog', 'anonymous'];
let scopes = {};

function scope(name) {
  const s = Object.create(null);
  if (name !== 'anonymous') s[name] = s;
  return s;
}

function fresh(names) {
  for (const name of names) scopes[name] = scope(name);
}

// Evaluates `source` as one ECMAScript expression (not statements) in the scope chain, in
// sloppy mode (VoiceXML's scopes are `with` objects); an undeclared name throws ReferenceError.
// The names of this function's own parameters begin with `pt$$`, which no document uses.
const evaluate = new Function(
  'pt$$s',
  'pt$$source',
  'with (pt$$s.session) with (pt$$s.application) with (pt$$s.document) with (pt$$s.dialog) ' +
    'with (pt$$s.anonymous) return eval("(" + pt$$source + "\\n)");'
);

function value(source) {
  if (typeof source !== 'string') throw new Error('an expression must be a string');
  return evaluate(scopes, source);
}

// The innermost scope declaring `name` (a variable name, the first name of a dotted one).
function declaring(name) {
  for (const s of [...NAMES].reverse()) {
    if (Object.prototype.hasOwnProperty.call(scopes[s], name)) return scopes[s];
  }
  throw new Error(`\`${name}\` is assigned but not declared`);
}

// `<assign name expr>` and `<clear>`: `name` is a declared variable or a property of one.
function assign(name, v) {
  const parts = name.split('.');
  if (!parts.every((p) => /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(p))) {
    throw new Error(`\`${name}\` is not a variable name`);
  }
  let target = declaring(parts[0]);
  for (const p of parts.slice(0, -1)) {
    target = target[p];
    if (target === null || typeof target !== 'object') {
      throw new Error(`\`${name}\`: \`${p}\` is not an object`);
    }
  }
  target[parts[parts.length - 1]] = v;
}

function declare(scopeName, name, v) {
  if (!NAMES.includes(scopeName)) throw new Error(`no scope ${scopeName}`);
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name)) throw new Error(`\`${name}\` is not a variable name`);
  scopes[scopeName][name] = v;
}

function handle(req) {
  switch (req.op) {
    // A new call: every scope anew, the session's variables from the request.
    case 'session':
      fresh(NAMES);
      Object.assign(scopes.session, req.variables);
      return true;
    // A form entered: a new dialog scope (and anonymous one).
    case 'form':
      fresh(['dialog', 'anonymous']);
      return true;
    // A block, filled, catch or other handler entered: a new anonymous scope.
    case 'anonymous':
      fresh(['anonymous']);
      return true;
    // `<var name [expr]>` in a scope.
    case 'var':
      declare(req.scope, req.name, req.expr === undefined ? undefined : value(req.expr));
      return true;
    // The platform sets a variable to a JSON value (a field's keys, `lastresult$`).
    case 'put':
      declare(req.scope, req.name, req.value);
      return true;
    case 'assign':
      assign(req.name, value(req.expr));
      return true;
    case 'clear':
      assign(req.name, undefined);
      return true;
    // Whether a variable holds a value (a field is filled).
    case 'defined':
      return declaring(req.name)[req.name] !== undefined;
    // An expression's value as prompt text or a URI (`<value>`, `goto expr`, `srcexpr`).
    case 'string':
      return String(value(req.expr));
    // A condition (`cond`): ToBoolean.
    case 'cond':
      return Boolean(value(req.expr));
    // `<data name>`: the fetched body parsed as JSON into the anonymous scope; false when it is
    // not JSON (error.badfetch).
    case 'data': {
      let parsed;
      try {
        parsed = JSON.parse(req.body);
      } catch {
        return false;
      }
      declare('anonymous', req.name, parsed);
      return true;
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(req.op)}`);
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let answer;
  try {
    answer = { ok: handle(JSON.parse(line)) };
  } catch (e) {
    answer = { error: `${e && e.name ? e.name + ': ' : ''}${e && e.message ? e.message : e}` };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});

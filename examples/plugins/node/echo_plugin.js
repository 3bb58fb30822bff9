#!/usr/bin/env node
// A plugwire plugin for Node.js, written from docs/protocol.md alone (no plugwire code).
// It transforms text: {op: "echo"|"upper"|"reverse"|"words", text} -> {op, text, words}.
// JSON codec; frames are a 4-byte big-endian length followed by a JSON envelope.
"use strict";

const COOKIE = "8c2f9b1e4d7a4f6b-plugwire";
const MAX_FRAME = 1024 * 1024;

if (process.env.PLUGWIRE_MAGIC_COOKIE !== COOKIE) {
  process.stderr.write("This is a plugwire plugin; a plugwire host starts it (see docs/protocol.md).\n");
  process.exit(1);
}

let shook = false;
let stopping = false;
let buffered = Buffer.alloc(0);

function log(level, message) {
  process.stderr.write(JSON.stringify({ level, logger: "node-echo", message }) + "\n");
}

function send(message) {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  process.stdout.write(Buffer.concat([header, body]));
}

function stop() {
  if (stopping) return;
  stopping = true;
  // Every call is answered synchronously, so nothing is in flight: flush and exit.
  process.stdout.write("", () => process.exit(0));
}

function transform(payload) {
  const request = payload && typeof payload === "object" ? payload : {};
  const op = typeof request.op === "string" ? request.op : "echo";
  const text = typeof request.text === "string" ? request.text : "";
  const words = text.split(/\s+/).filter(Boolean).length;
  switch (op) {
    case "echo":
      return { op, text, words };
    case "upper":
      return { op, text: text.toUpperCase(), words };
    case "reverse":
      return { op, text: Array.from(text).reverse().join(""), words };
    case "words":
      return { op, text: String(words), words };
    default:
      throw Object.assign(new Error(`unknown op ${JSON.stringify(op)}`), { code: 1205 });
  }
}

function handle(message) {
  if (!shook) {
    if (message.type !== "hello") throw new Error("expected hello");
    if (!(message.versions || []).includes(1)) {
      send({ type: "error", id: 0, code: 2006, message: "this plugin speaks protocol 1 only", retryable: false });
      return stop();
    }
    if (!(message.codecs || []).includes("json")) {
      send({ type: "error", id: 0, code: 2005, message: "this plugin speaks json only", retryable: false });
      return stop();
    }
    shook = true;
    send({
      type: "hello",
      version: 1,
      codec: "json",
      max_frame: MAX_FRAME,
      info: { name: "node-echo", version: "1.0.0", description: "Text transforms in Node.js", capabilities: ["echo", "upper", "reverse", "words"] },
    });
    log("INFO", `serving as ${process.env.PLUGWIRE_PLUGIN_NAME || "?"}`);
    return;
  }
  switch (message.type) {
    case "call": {
      if (stopping) {
        return send({ type: "error", id: message.id, code: 1304, message: "stopping", retryable: true });
      }
      if (message.method !== undefined && message.method !== "execute") {
        return send({ type: "error", id: message.id, code: 2007, message: `unknown method ${message.method}`, retryable: false });
      }
      const deadline = (message.ctx && message.ctx.deadline) || 0;
      if (deadline && deadline * 1000 < Date.now()) {
        return send({ type: "error", id: message.id, code: 1204, message: "deadline passed", retryable: true });
      }
      try {
        send({ type: "result", id: message.id, payload: transform(message.payload) });
      } catch (err) {
        send({ type: "error", id: message.id, code: err.code || 1203, message: err.message, retryable: false });
      }
      return;
    }
    case "health":
      return send({ type: "result", id: message.id, payload: { status: "healthy", message: "node ok" } });
    case "cancel":
      return; // calls finish synchronously: nothing to cancel
    case "shutdown":
      return stop();
    default:
      return; // unknown message types are ignored
  }
}

process.stdin.on("data", (chunk) => {
  buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
  while (buffered.length >= 4) {
    const length = buffered.readUInt32BE(0);
    if (length === 0 || length > MAX_FRAME) {
      send({ type: "error", id: 0, code: 2001, message: `frame of ${length} bytes exceeds ${MAX_FRAME}`, retryable: false });
      process.stdout.write("", () => process.exit(1));
      process.stdin.pause();
      return;
    }
    if (buffered.length < 4 + length) break;
    const body = buffered.subarray(4, 4 + length);
    buffered = buffered.subarray(4 + length);
    let message;
    try {
      message = JSON.parse(body.toString("utf8"));
    } catch (err) {
      send({ type: "error", id: 0, code: 2003, message: `undecodable envelope: ${err.message}`, retryable: false });
      continue;
    }
    handle(message);
  }
});
process.stdin.on("end", stop);
process.on("SIGTERM", stop);

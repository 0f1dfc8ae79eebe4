// Drives continuum-lsp from Node with vscode-languageserver-protocol (what
// vscode-languageclient is built on): the same messages the VSCode extension sends.
// Usage: node drive.cjs <workspace dir> <server command> [args...]
// Prints one JSON object with what the server answered.
"use strict";
const { spawn } = require("node:child_process");
const path = require("node:path");
const fs = require("node:fs");
const { pathToFileURL } = require("node:url");
const {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  InitializeRequest,
  InitializedNotification,
  DidOpenTextDocumentNotification,
  CodeActionRequest,
  ShutdownRequest,
  ExitNotification,
  WorkDoneProgress,
} = require("vscode-languageserver-protocol/node");

async function main() {
  const [workspace, command, ...args] = process.argv.slice(2);
  const server = spawn(command, args, { cwd: workspace, stdio: ["pipe", "pipe", "inherit"] });
  const connection = createProtocolConnection(
    new StreamMessageReader(server.stdout),
    new StreamMessageWriter(server.stdin),
  );
  connection.listen();
  const rootUri = pathToFileURL(workspace).toString();
  const init = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri,
    capabilities: { window: { workDoneProgress: true } },
    workspaceFolders: [{ uri: rootUri, name: path.basename(workspace) }],
  });
  await connection.sendNotification(InitializedNotification.type, {});
  const file = path.join(workspace, "lookup.py");
  const uri = pathToFileURL(file).toString();
  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "python", version: 1, text: fs.readFileSync(file, "utf8") },
  });
  const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } };
  const actions = await connection.sendRequest(CodeActionRequest.type, {
    textDocument: { uri },
    range,
    context: { diagnostics: [] },
  });
  const personas = await connection.sendRequest("continuum/personas", {});
  const token = "node-1";
  const progress = [];
  connection.onProgress(WorkDoneProgress.type, token, (value) => progress.push(value));
  const result = await connection.sendRequest("continuum/chat", {
    prompt: "What could go wrong here?",
    persona: personas[0].id,
    textDocument: { uri },
    range,
    workDoneToken: token,
  });
  await connection.sendRequest(ShutdownRequest.type);
  await connection.sendNotification(ExitNotification.type);
  const code = await new Promise((resolve) => server.on("exit", (c) => resolve(c)));
  process.stdout.write(
    JSON.stringify({
      commands: init.capabilities.executeCommandProvider?.commands ?? [],
      actions: actions.map((a) => a.title),
      personas,
      result,
      kinds: progress.map((p) => p.kind),
      streamed: progress.filter((p) => p.kind === "report").map((p) => p.message).join(""),
      exitCode: code,
    }) + "\n",
  );
  connection.dispose();
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});

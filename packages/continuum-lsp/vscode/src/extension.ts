// continuum personas in VSCode: starts continuum-lsp (stdio) from the user's environment,
// shows streamed answers in a panel, and offers the persona commands in the palette and
// the editor's context menu. Everything else (code actions, diagnostics with quick fixes,
// hover) comes from the language server through vscode-languageclient.

import * as path from "path";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
  WorkDoneProgress,
} from "vscode-languageclient/node";

interface Persona {
  id: string;
  name: string;
  specialty: string;
}

interface ChatResult {
  text: string;
  persona: string;
}

let client: LanguageClient | undefined;
let panel: AnswerPanel | undefined;
let nextToken = 0;

class AnswerPanel {
  private view: vscode.WebviewPanel | undefined;
  private text = "";

  show(title: string): void {
    if (!this.view) {
      this.view = vscode.window.createWebviewPanel(
        "continuum.answers",
        "continuum",
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true },
      );
      this.view.onDidDispose(() => (this.view = undefined));
      this.view.webview.html = PAGE;
    }
    this.text = "";
    this.view.reveal(undefined, true);
    void this.view.webview.postMessage({ kind: "start", title });
  }

  append(delta: string): void {
    this.text += delta;
    void this.view?.webview.postMessage({ kind: "delta", text: delta });
  }

  finish(text: string): void {
    if (text !== this.text) {
      void this.view?.webview.postMessage({ kind: "replace", text });
    }
  }

  error(message: string): void {
    void this.view?.webview.postMessage({ kind: "error", text: message });
  }
}

const PAGE = `<!DOCTYPE html><html><body style="font-family: var(--vscode-font-family)">
<h3 id="title"></h3><pre id="answer" style="white-space: pre-wrap"></pre>
<script>
const title = document.getElementById("title"), answer = document.getElementById("answer");
window.addEventListener("message", (e) => {
  const m = e.data;
  if (m.kind === "start") { title.textContent = m.title; answer.textContent = ""; }
  if (m.kind === "delta") { answer.textContent += m.text; }
  if (m.kind === "replace") { answer.textContent = m.text; }
  if (m.kind === "error") { answer.textContent += "\\n\\n(" + m.text + ")"; }
});
</script></body></html>`;

function settings(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("continuum");
}

function serverOptions(): ServerOptions {
  const cfg = settings();
  const command = cfg.get<string>("serverPath") || "continuum-lsp";
  const args: string[] = [];
  const config = cfg.get<string>("configPath");
  if (config) {
    args.push("--config", config);
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  const dataDir = cfg.get<string>("dataDir");
  if (dataDir) {
    env.CONTINUUM_DATA = dataDir;
  }
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? path.dirname(command);
  return { command, args, transport: TransportKind.stdio, options: { env, cwd } };
}

async function pickPersona(c: LanguageClient): Promise<string | undefined> {
  const preset = settings().get<string>("persona");
  if (preset) {
    return preset;
  }
  const personas = await c.sendRequest<Persona[]>("continuum/personas", {});
  const picked = await vscode.window.showQuickPick(
    personas.map((p) => ({ label: p.name, description: p.specialty, id: p.id })),
    { placeHolder: "Ask whom?" },
  );
  return picked?.id;
}

async function ask(
  c: LanguageClient,
  persona: string,
  question: string,
  editor: vscode.TextEditor,
): Promise<void> {
  const token = `continuum-${++nextToken}`;
  const answers = (panel ??= new AnswerPanel());
  answers.show(question);
  const listener = c.onProgress(WorkDoneProgress.type, token, (value) => {
    if (value.kind === "report" && value.message) {
      answers.append(value.message);
    }
  });
  const sel = editor.selection;
  try {
    const result = await c.sendRequest<ChatResult>("continuum/chat", {
      prompt: question,
      persona,
      textDocument: { uri: editor.document.uri.toString() },
      range: {
        start: { line: sel.start.line, character: sel.start.character },
        end: { line: sel.end.line, character: sel.end.character },
      },
      workDoneToken: token,
    });
    answers.finish(result.text);
  } catch (err) {
    answers.error(err instanceof Error ? err.message : String(err));
  } finally {
    listener.dispose();
  }
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannelName: "continuum",
    middleware: {
      // "Ask Maya about this" from the light bulb runs on the server: show its answer
      executeCommand: async (command, args, next) => {
        const result = await next(command, args);
        if (command === "continuum.ask" && result && typeof result.text === "string") {
          (panel ??= new AnswerPanel()).show(`${result.persona}`);
          panel.finish(result.text);
        }
        return result;
      },
    },
  };
  client = new LanguageClient("continuum", "continuum personas", serverOptions(), clientOptions);
  await client.start();
  context.subscriptions.push({ dispose: () => void client?.stop() });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand("continuum.askSelection", async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor || !client) {
        return;
      }
      const persona = await pickPersona(client);
      if (!persona) {
        return;
      }
      const question = await vscode.window.showInputBox({
        prompt: "Your question about the selection",
        value: "Explain this code and point out anything risky.",
      });
      if (question) {
        await ask(client, persona, question, editor);
      }
    }),
    vscode.commands.registerCommand("continuum.reviewFile", async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor || !client) {
        return;
      }
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "continuum: reviewing…" },
        () =>
          client!.sendRequest(ExecuteCommandRequest.type, {
            command: "continuum.review",
            arguments: [editor.document.uri.toString()],
          }),
      );
    }),
    vscode.commands.registerCommand("continuum.showPanel", () =>
      (panel ??= new AnswerPanel()).show("continuum"),
    ),
    vscode.commands.registerCommand("continuum.restartServer", async () => {
      await client?.stop();
      await start(context);
    }),
  );
  await start(context);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}

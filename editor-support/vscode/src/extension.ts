// Starts `routing lsp` (the Python language server) for .route files over stdio.
import { ExtensionContext, workspace } from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

export async function activate(context: ExtensionContext): Promise<void> {
  const configured = workspace
    .getConfiguration("routing")
    .get<string[]>("server.command", ["routing", "lsp"]);
  const [command, ...args] = configured.length > 0 ? configured : ["routing", "lsp"];
  const serverOptions: ServerOptions = { command, args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "routing" }],
    synchronize: { fileEvents: workspace.createFileSystemWatcher("**/*.route") },
  };
  client = new LanguageClient("routing", "Routing DSL Language Server", serverOptions, clientOptions);
  context.subscriptions.push({ dispose: () => void client?.stop() });
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}

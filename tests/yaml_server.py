"""A minimal LSP client for the real yaml-language-server, over stdio, for tests/test_editor.py.

Every read has a timeout and the server is killed when the client closes, so a hung or
crashed server fails a test instead of hanging it. The server is found through
NETSPEC_YAML_LANGUAGE_SERVER (the executable, or its `bin/yaml-language-server` /
`out/server/src/server.js` script) or `yaml-language-server` on PATH.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ENV_VAR = "NETSPEC_YAML_LANGUAGE_SERVER"
TIMEOUT_S = 20.0  # per answer; the first one loads the schema


def server_command() -> list[str] | None:
    """How to start the server, or None when there is none to start."""
    given = os.environ.get(ENV_VAR)
    if given:
        path = Path(given)
        if path.suffix == ".js" or (path.is_file() and _is_node_script(path)):
            node = shutil.which("node")
            return [node, str(path), "--stdio"] if node else None
        return [str(path), "--stdio"] if path.exists() else None
    found = shutil.which("yaml-language-server")
    return [found, "--stdio"] if found else None


def _is_node_script(path: Path) -> bool:
    try:
        return path.read_bytes()[:64].startswith(b"#!") and b"node" in path.read_bytes()[:64]
    except OSError:
        return False


class YamlServer:
    """One running yaml-language-server: open documents, read diagnostics, hovers, completions."""

    def __init__(self, command: list[str], root: Path):
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.messages: queue.Queue[dict | None] = queue.Queue()
        self.diagnostics: dict[str, list[dict]] = {}
        self._next_id = 0
        threading.Thread(target=self._read_all, daemon=True).start()
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {
                    "textDocument": {
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                        "completion": {"completionItem": {"snippetSupport": True}},
                        "publishDiagnostics": {},
                    },
                    "workspace": {"configuration": True},
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self._settings()})

    @staticmethod
    def _settings() -> dict:
        return {
            "yaml": {
                "validate": True,
                "hover": True,
                "completion": True,
                "schemaStore": {"enable": False},
                "yamlVersion": "1.2",
            }
        }

    # -- the wire -----------------------------------------------------------------------------
    def _read_all(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while True:
                length = None
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length is None:
                    continue
                self.messages.put(json.loads(stream.read(length)))
        finally:
            self.messages.put(None)  # the server is gone

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict) -> Any:
        self._next_id += 1
        wanted = self._next_id
        self._send({"id": wanted, "method": method, "params": params})
        return self._wait(lambda m: m.get("id") == wanted and "method" not in m).get("result")

    def _wait(self, accept, timeout: float = TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("yaml-language-server did not answer in time")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise RuntimeError("yaml-language-server exited")
            self._handle(message)
            if accept(message):
                return message

    def _handle(self, message: dict) -> None:
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            params = message["params"]
            self.diagnostics[params["uri"]] = params["diagnostics"]
        elif "id" in message and method is not None:  # a request from the server
            result: Any = None
            if method == "workspace/configuration":
                settings = self._settings()
                result = [
                    settings.get(item.get("section", ""), settings)
                    for item in message["params"]["items"]
                ]
            self._send({"id": message["id"], "result": result})

    # -- documents ----------------------------------------------------------------------------
    def open(self, uri: str, text: str) -> list[dict]:
        """Open a document and return its diagnostics (the server's first report on it)."""
        return self.open_all({uri: text})[uri]

    def open_all(self, documents: dict[str, str]) -> dict[str, list[dict]]:
        """Open several documents at once (the server validates them side by side) and
        return each one's diagnostics."""
        for uri, text in documents.items():
            self.diagnostics.pop(uri, None)
            self.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
            )
        waiting = set(documents)
        while waiting:
            message = self._wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
            waiting.discard(message["params"]["uri"])
        return {uri: self.diagnostics[uri] for uri in documents}

    def close(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def hover(self, uri: str, line: int, character: int) -> str:
        result = self.request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        if not result:
            return ""
        contents = result["contents"]
        return contents["value"] if isinstance(contents, dict) else str(contents)

    def completion(self, uri: str, line: int, character: int) -> list[dict]:
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        if isinstance(result, dict):
            return result.get("items", [])
        return result or []

    def shutdown(self) -> None:
        try:
            if self.process.poll() is None:
                self.request("shutdown", {})
                self.notify("exit", {})
                self.process.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a dying server must not hide the test's result
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)

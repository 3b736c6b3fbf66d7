"""A stand-in for the W&B backend on 127.0.0.1, for tests that run W&B online (`WANDB_BASE_URL`).

It answers the calls wandb 0.31's client makes for a run (GraphQL `Viewer`, `UpsertBucket`,
`RunResumeStatus`, `CreateRunFiles`, ...; the run's `file_stream`; file uploads), records every
request with its headers, and keeps what each run sent, so a test can read back what W&B uploaded and
check which credentials it used. Operations it does not know get an empty `data` object and are
recorded under `unknown`, so a newer client that needs more shows up as a failing assertion, not a hang.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENTITY = "emo-tester"


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


@dataclass
class Run:
    project: str
    upserts: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # every history row the file stream sent
    files: dict[str, bytes] = field(default_factory=dict)  # uploaded files by name
    exit_code: int | None = None


def _gid(kind: str, name: str) -> str:
    return base64.b64encode(f"{kind}:{name}".encode()).decode()


class FakeWandb:
    def __init__(self):
        self.requests: list[Request] = []
        self.runs: dict[str, Run] = {}
        self.unknown: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, payload, status: int = 200):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _read(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_POST(self):
                body = self._read()
                with fake._lock:
                    fake.requests.append(Request("POST", self.path, dict(self.headers), body))
                    self._reply(fake._post(self.path, body))

            def do_PUT(self):
                body = self._read()
                with fake._lock:
                    fake.requests.append(Request("PUT", self.path, dict(self.headers), body))
                    parts = self.path.strip("/").split("/")  # upload/RUN/NAME...
                    if parts[0] == "upload" and len(parts) >= 3:
                        fake._run(parts[1]).files["/".join(parts[2:])] = body
                    self._reply({})

            def do_GET(self):
                with fake._lock:
                    fake.requests.append(Request("GET", self.path, dict(self.headers), b""))
                    self._reply({})

            def log_message(self, *args):  # keep the test output clean
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client hanging up is not a test failure
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeWandb:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _run(self, name: str, project: str = "") -> Run:
        return self.runs.setdefault(name, Run(project))

    def _post(self, path: str, body: bytes):
        if path.startswith("/graphql"):
            return {"data": self._graphql(json.loads(body or b"{}"))}
        if path.endswith("/file_stream"):  # /files/ENTITY/PROJECT/RUN/file_stream
            run = self._run(path.rstrip("/").split("/")[-2])
            msg = json.loads(body or b"{}")
            for name, chunk in (msg.get("files") or {}).items():
                if name == "wandb-history.jsonl":
                    run.history += [json.loads(line) for line in chunk.get("content", [])]
            if msg.get("complete"):
                run.exit_code = msg.get("exitcode")
            return {"exitcode": None, "limits": {}}
        return {}

    def _graphql(self, req: dict) -> dict:
        op, v = req.get("operationName"), req.get("variables") or {}
        if op == "Viewer":
            return {"viewer": {"id": _gid("User", ENTITY), "entity": ENTITY, "username": ENTITY,
                               "email": "tester@example.invalid", "flags": "{}", "teams": {"edges": []}}}  # fmt: skip
        if op == "UpsertBucket":
            name, project = v.get("name") or v.get("id"), v.get("project") or "uncategorized"
            run = self._run(name, project)
            run.upserts.append(v)
            return {"upsertBucket": {"inserted": len(run.upserts) == 1, "bucket": {
                "id": _gid("Run", name), "name": name, "displayName": v.get("displayName") or name,
                "description": "", "config": "{}", "sweepName": None, "historyLineCount": 0,
                "project": {"id": _gid("Project", project), "name": project,
                            "entity": {"id": _gid("Entity", ENTITY), "name": ENTITY}}}}}  # fmt: skip
        if op == "RunResumeStatus":
            return {"model": {"id": _gid("Project", v.get("project", "")), "name": v.get("project"),
                              "entity": {"id": _gid("Entity", ENTITY), "name": ENTITY}, "bucket": None}}  # fmt: skip
        if op == "CreateRunFiles":
            run = v["run"]
            files = [{"name": f, "uploadUrl": f"{self.url}/upload/{run}/{f}"} for f in v.get("files", [])]
            return {"createRunFiles": {"runID": _gid("Run", run), "uploadHeaders": [], "files": files}}
        if op == "OrganizationCoreWeaveOrganizationID":
            return {"entity": {"organization": None}}
        self.unknown.append(op or req.get("query", "")[:80])
        return {}

"""A small Hugging Face Hub at the HTTP level, for testing ``HuggingFaceRegistry`` with the
real ``huggingface_hub`` client.

Implements the endpoints the client calls: repo creation (public or private), repo info,
repo settings (visibility), ``preupload`` (binary and large files → LFS, small text →
regular), the Git LFS batch API with the basic transfer (PUT) and verify, the ndjson
``commit`` endpoint, ``paths-info`` and ``resolve`` downloads.

Write calls require ``Authorization: Bearer <token>`` (the one account the fake knows,
which owns every repo it creates). A **private** repo is invisible to everyone else, as on
the Hub: every read without a token answers 401 and with another token 404, both with
``X-Error-Code: RepoNotFound`` — the same answer as for a repo that does not exist, so
nobody can tell a private repo from a missing one. Only the owner may change a repo's
visibility (``PUT /api/models/{repo}/settings``, ``{"visibility": "public"}``). Error
responses carry the ``X-Error-Code`` header the client uses to classify them (RepoNotFound,
RevisionNotFound, EntryNotFound). Served by uvicorn on a loopback port in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass
class Repo:
    commits: dict[str, dict[str, tuple[bytes | None, str | None]]] = field(default_factory=dict)
    main: str | None = None  # head commit of "main"
    private: bool = False


class FakeHub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.auth_seen: list[str] = []
        self.corrupt_next_download = False
        self.app = self._build()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- helpers ------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        self.auth_seen.append(header)
        return header == f"Bearer {self.token}"

    @staticmethod
    def _error(status: int, code: str | None, message: str) -> JSONResponse:
        headers = {"X-Error-Code": code} if code else {}
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def _readable(self, repo_id: str, request: Request) -> Repo | JSONResponse:
        """The repo if this caller may read it; a private repo reads as missing."""
        repo = self.repos.get(repo_id)
        header = request.headers.get("authorization", "")
        if repo is not None and (not repo.private or header == f"Bearer {self.token}"):
            return repo
        if not header:
            return self._error(401, "RepoNotFound", "Repository not found")
        return self._error(404, "RepoNotFound", "Repository not found")

    def _files_at(
        self, repo_id: str, revision: str, request: Request
    ) -> dict[str, tuple[bytes | None, str | None]] | JSONResponse:
        repo = self._readable(repo_id, request)
        if isinstance(repo, JSONResponse):
            return repo
        oid = repo.main if revision == "main" else revision
        if oid is None or oid not in repo.commits:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[oid]

    # ---- app ----------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI()
        hub = self

        @app.post("/api/repos/create")
        async def create(request: Request) -> Response:
            if not hub._authorized(request):
                return hub._error(401, None, "Invalid credentials")
            body = await request.json()
            repo_id = (
                f"{body['organization']}/{body['name']}"
                if body.get("organization")
                else body["name"]
            )
            url = f"{hub.url}/{repo_id}"
            if repo_id in hub.repos:
                return JSONResponse(
                    {"error": "You already created this model repo", "url": url}, 409
                )
            private = body.get("visibility") == "private" or body.get("private") is True
            hub.repos[repo_id] = Repo(private=private)
            return JSONResponse({"url": url, "name": repo_id})

        @app.get("/api/models/{ns}/{name}")
        async def repo_info(ns: str, name: str, request: Request) -> Response:
            repo = hub._readable(f"{ns}/{name}", request)
            if isinstance(repo, JSONResponse):
                return repo
            files = repo.commits.get(repo.main or "", {})
            return JSONResponse(
                {
                    "id": f"{ns}/{name}",
                    "private": repo.private,
                    "sha": repo.main,
                    "siblings": [{"rfilename": path} for path in sorted(files)],
                }
            )

        @app.put("/api/models/{ns}/{name}/settings")
        async def settings(ns: str, name: str, request: Request) -> Response:
            repo = hub._readable(f"{ns}/{name}", request)
            if isinstance(repo, JSONResponse):
                return repo
            if not hub._authorized(request):
                return hub._error(403, None, "You must be the owner to change settings")
            body = await request.json()
            if "visibility" in body:
                if body["visibility"] not in ("public", "private"):
                    return hub._error(400, None, f"invalid visibility {body['visibility']!r}")
                repo.private = body["visibility"] == "private"
            elif "private" in body:
                repo.private = bool(body["private"])
            return JSONResponse({})

        @app.post("/api/models/{ns}/{name}/preupload/{revision}")
        async def preupload(ns: str, name: str, revision: str, request: Request) -> Response:
            if not hub._authorized(request):
                return hub._error(401, None, "Invalid credentials")
            if f"{ns}/{name}" not in hub.repos:
                return hub._error(404, "RepoNotFound", "Repository not found")
            body = await request.json()
            files = []
            for f in body["files"]:
                sample = base64.b64decode(f["sample"])
                binary = (
                    b"\x00" in sample or f["size"] > 10 * 1024 * 1024 or f["path"].endswith(".tar")
                )
                files.append(
                    {
                        "path": f["path"],
                        "uploadMode": "lfs" if binary else "regular",
                        "shouldIgnore": False,
                    }
                )
            return JSONResponse({"files": files, "commitOid": hub.repos[f"{ns}/{name}"].main})

        @app.post("/{ns}/{name}.git/info/lfs/objects/batch")
        async def lfs_batch(ns: str, name: str, request: Request) -> Response:
            if not hub._authorized(request):
                return hub._error(401, None, "Invalid credentials")
            body = await request.json()
            objects = []
            for obj in body["objects"]:
                entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                        "verify": {"href": f"{hub.url}/lfs-verify", "header": {}},
                    }
                objects.append(entry)
            return JSONResponse({"transfer": "basic", "objects": objects})

        @app.put("/lfs-upload/{oid}")
        async def lfs_upload(oid: str, request: Request) -> Response:
            data = await request.body()
            if hashlib.sha256(data).hexdigest() != oid:
                return hub._error(400, None, "sha256 mismatch")
            hub.lfs[oid] = data
            return Response(status_code=200)

        @app.post("/lfs-verify")
        async def lfs_verify(request: Request) -> Response:
            body = await request.json()
            ok = body["oid"] in hub.lfs and len(hub.lfs[body["oid"]]) == body["size"]
            return JSONResponse({"ok": ok}, status_code=200 if ok else 422)

        @app.post("/api/models/{ns}/{name}/commit/{revision}")
        async def commit(ns: str, name: str, revision: str, request: Request) -> Response:
            if not hub._authorized(request):
                return hub._error(401, None, "Invalid credentials")
            repo = hub.repos.get(f"{ns}/{name}")
            if repo is None:
                return hub._error(404, "RepoNotFound", "Repository not found")
            files = dict(repo.commits[repo.main]) if repo.main else {}
            for line in (await request.body()).splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "file":
                    files[value["path"]] = (base64.b64decode(value["content"]), None)
                elif item["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return hub._error(400, None, f"LFS object {value['oid']} was not uploaded")
                    files[value["path"]] = (None, value["oid"])
            oid = hashlib.sha1(
                json.dumps(
                    sorted(
                        (p, c[1] or hashlib.sha256(c[0] or b"").hexdigest())
                        for p, c in files.items()
                    )
                ).encode()
                + str(time.time_ns()).encode()
            ).hexdigest()
            repo.commits[oid] = files
            repo.main = oid
            return JSONResponse(
                {
                    "commitUrl": f"{hub.url}/{ns}/{name}/commit/{oid}",
                    "commitOid": oid,
                    "success": True,
                    "pullRequestUrl": None,
                }
            )

        @app.post("/api/models/{ns}/{name}/paths-info/{revision}")
        async def paths_info(ns: str, name: str, revision: str, request: Request) -> Response:
            files = hub._files_at(f"{ns}/{name}", revision, request)
            if isinstance(files, JSONResponse):
                return files
            form = parse_qs((await request.body()).decode())
            out = []
            for path in form.get("paths", []):
                if path not in files:
                    continue
                content, lfs_oid = files[path]
                if lfs_oid is not None:
                    size = len(hub.lfs[lfs_oid])
                    out.append(
                        {
                            "type": "file",
                            "path": path,
                            "size": size,
                            "oid": "0" * 40,
                            "lfs": {"oid": lfs_oid, "size": size, "pointerSize": 134},
                        }
                    )
                else:
                    assert content is not None
                    out.append(
                        {"type": "file", "path": path, "size": len(content), "oid": "1" * 40}
                    )
            return JSONResponse(out)

        @app.get("/{ns}/{name}/resolve/{revision}/{path:path}")
        async def resolve(
            ns: str, name: str, revision: str, path: str, request: Request
        ) -> Response:
            files = hub._files_at(f"{ns}/{name}", revision, request)
            if isinstance(files, JSONResponse):
                return files
            if path not in files:
                return hub._error(404, "EntryNotFound", f"{path} does not exist")
            content, lfs_oid = files[path]
            data = hub.lfs[lfs_oid] if lfs_oid is not None else content or b""
            if hub.corrupt_next_download:
                hub.corrupt_next_download = False
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            return Response(data, media_type="application/octet-stream")

        return app

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeHub:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake hub did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

"""Unit tests of the expertd resolver against a stand-in daemon (a local
HTTP server answering as the daemon's /v1/resolve does). Run from
integrations/vllm with the vLLM stand-in on the path:

    PYTHONPATH=.:tests/stubs python3 -m unittest discover -s tests -t .
"""

import asyncio
import json
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import expertd_vllm
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolverRegistry

from tests.driver import Models

CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


class Daemon:
    """A stand-in daemon: answers POST /v1/resolve/{name} from a table."""

    def __init__(self, answers, token="", hold=None):
        self.answers = answers  # name -> (status, body)
        self.requests = []
        self.hold = hold  # an Event the handler waits on before answering
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.requests.append((self.path, dict(self.headers), body))
                if outer.hold is not None:
                    outer.hold.wait(30)
                if token and self.headers.get("Authorization") != "Bearer " + token:
                    status, data = 401, {"error": "missing or wrong bearer token"}
                else:
                    name = self.path.removeprefix("/v1/resolve/")
                    status, data = outer.answers.get(name, (404, {"error": "not found"}))
                out = data if isinstance(data, bytes) else json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the resolver gave up waiting

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.api = "127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def found(path="/adapters/.versions/%s-0a1b2c3d" % CID, lid=12345):
    return (200, {"cid": CID, "dir": "/adapters/python", "name": "python", "path": path, "lora_int_id": lid})


class ResolverTest(unittest.TestCase):
    def daemon(self, answers, **kw):
        d = Daemon(answers, **kw)
        self.addCleanup(d.close)
        return d

    def test_found(self):
        d = self.daemon({"python": found()})
        r = expertd_vllm.ExpertdResolver(api=d.api, token="tok")
        req = asyncio.run(r.resolve_lora("gpt2-tiny", "python"))
        self.assertIsInstance(req, LoRARequest)
        self.assertEqual((req.lora_name, req.lora_int_id, req.lora_path),
                         ("python", 12345, found()[1]["path"]))
        path, headers, body = d.requests[0]
        self.assertEqual(path, "/v1/resolve/python")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["Authorization"], "Bearer tok")
        self.assertEqual(json.loads(body), {"base_model": "gpt2-tiny"})

    def test_name_is_escaped(self):
        d = self.daemon({"a%2Fb%20c": found()})
        req = asyncio.run(expertd_vllm.ExpertdResolver(api=d.api).resolve_lora("m", "a/b c"))
        self.assertIsNotNone(req)
        self.assertEqual(req.lora_name, "a/b c")

    def test_none(self):
        cases = {
            "unknown": None,  # 404
            "refused": (409, {"error": "conflict: rank 32 > 16"}),
            "broken": (500, {"error": "disk on fire"}),
            "not-json": (200, b"<html>"),
            "not-object": (200, [1, 2]),
            "relative": found(path="adapters/python"),
        }
        d = self.daemon({k: v for k, v in cases.items() if v is not None})
        r = expertd_vllm.ExpertdResolver(api=d.api)
        for name in cases:
            with self.subTest(name):
                with self.assertLogs("expertd_vllm", "WARNING") if name != "unknown" else _nothing():
                    self.assertIsNone(asyncio.run(r.resolve_lora("m", name)))

    def test_daemon_down(self):
        d = Daemon({})
        api = d.api
        d.close()  # nothing listens there now
        with self.assertLogs("expertd_vllm", "WARNING"):
            self.assertIsNone(asyncio.run(expertd_vllm.ExpertdResolver(api=api).resolve_lora("m", "x")))

    def test_bad_id_replaced(self):
        d = self.daemon({"python": found(lid=0)})
        req = asyncio.run(expertd_vllm.ExpertdResolver(api=d.api).resolve_lora("m", "python"))
        self.assertEqual(req.lora_int_id, expertd_vllm.lora_int_id(CID))
        self.assertGreater(req.lora_int_id, 0)

    def test_negative_answers_remembered(self):
        d = self.daemon({})
        r = expertd_vllm.ExpertdResolver(api=d.api)

        async def twice():
            return [await r.resolve_lora("m", "x"), await r.resolve_lora("m", "x"), await r.resolve_lora("other", "x")]

        self.assertEqual(asyncio.run(twice()), [None, None, None])
        self.assertEqual(len(d.requests), 2)  # the second ask for (m, x) was answered from memory

    def test_bounded_and_never_blocks_the_loop(self):
        hold = threading.Event()
        d = self.daemon({"python": found()}, hold=hold)
        r = expertd_vllm.ExpertdResolver(api=d.api, timeout=0.5)

        async def run():
            ticks = 0
            task = asyncio.ensure_future(r.resolve_lora("m", "python"))
            while not task.done():  # the loop keeps serving while the daemon thinks
                ticks += 1
                await asyncio.sleep(0.01)
            return await task, ticks

        with self.assertLogs("expertd_vllm", "WARNING"):
            req, ticks = asyncio.run(run_then(run(), hold.set))
        self.assertIsNone(req)
        self.assertGreater(ticks, 1)

    def test_cancellation_propagates(self):
        hold = threading.Event()
        d = self.daemon({"python": found()}, hold=hold)
        r = expertd_vllm.ExpertdResolver(api=d.api)

        async def run():
            task = asyncio.ensure_future(r.resolve_lora("m", "python"))
            while not d.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            hold.set()  # let the thread vLLM no longer waits for finish
            await task

        with self.assertRaises(asyncio.CancelledError):
            asyncio.run(run())

    def test_api_forms(self):
        for api, want in {
            "127.0.0.1:5180": "http://127.0.0.1:5180",
            "0.0.0.0:5180": "http://127.0.0.1:5180",
            "[::]:5180": "http://[::1]:5180",
            "http://localhost:5180/": "http://localhost:5180",
        }.items():
            self.assertEqual(expertd_vllm._base_url(api), want)

    def test_register_and_vllm_driver(self):
        LoRAResolverRegistry.resolvers.clear()
        expertd_vllm.register()
        expertd_vllm.register()  # idempotent: it runs in every vLLM process
        self.assertEqual(list(LoRAResolverRegistry.get_supported_resolvers()), ["expertd"])
        self.assertIsInstance(LoRAResolverRegistry.get_resolver("expertd"), expertd_vllm.ExpertdResolver)
        LoRAResolverRegistry.resolvers.clear()


async def run_then(coro, then):
    """Awaits coro, then calls then (before asyncio.run waits for the
    threads of its executor)."""
    try:
        return await coro
    finally:
        then()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    unittest.main()

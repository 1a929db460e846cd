"""expertd's LoRA resolver for vLLM.

vLLM (with VLLM_ALLOW_RUNTIME_LORA_UPDATING) asks its resolvers about a
request's model when it is neither a served model nor a loaded adapter
(vllm/entrypoints/openai/models/serving.py, resolve_lora). This resolver asks
the local expertd daemon, ``POST /v1/resolve/{name}`` with the base model, to
fetch the trusted expert of that name for that base (from the swarm if need
be) and write it to the adapters directory; it returns the LoRARequest vLLM
then loads, or None.

Written against vLLM's resolver interface (vllm/lora/resolver.py and
vllm/lora/request.py, unchanged in substance from v0.8.5 to the v0.22 cycle,
upstream commit 9aaf83ef5):

* resolve_lora runs on the API server's event loop: the HTTP call runs in a
  thread (asyncio.to_thread), never on the loop.
* vLLM sets no time limit: the wait is bounded here (EXPERTD_RESOLVE_TIMEOUT,
  30 s by default).
* vLLM does not catch what resolve_lora raises (the client would get a 500):
  every failure is logged and answered None, except cancellation.
* vLLM runs every resolver again for every request naming an unknown model:
  a None is remembered for a few seconds per (base, name).
* vLLM overwrites lora_int_id with its own counter; the daemon's id (stable
  for the expert's CID, > 0) is sent anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

__all__ = ["ExpertdResolver", "register"]

logger = logging.getLogger(__name__)

RESOLVER_NAME = "expertd"
DEFAULT_API = "127.0.0.1:5180"
DEFAULT_TIMEOUT = 30.0
NEGATIVE_TTL = 5.0  # seconds a None is remembered
MAX_ANSWER = 1 << 20  # bytes read of the daemon's answer


def _base_url(api: str) -> str:
    """The daemon's base URL from EXPERTD_API (host:port or a URL). An
    unspecified host (0.0.0.0, the daemon's api.listen in a container) is
    dialled on loopback: the daemon refuses a Host naming no address."""
    if "://" not in api:
        api = "http://" + api
    u = urllib.parse.urlsplit(api)
    host = u.hostname or "127.0.0.1"
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = "[" + host + "]"
    netloc = host if u.port is None else f"{host}:{u.port}"
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path.rstrip("/"), "", ""))


def lora_int_id(cid: str) -> int:
    """A positive id stable for a CID, as the daemon computes it."""
    n = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:4], "big")
    return (n & 0x7FFFFFFF) | 1


class ExpertdResolver(LoRAResolver):
    """Resolves adapter names through the local expertd daemon."""

    def __init__(self, api: str | None = None, token: str | None = None, timeout: float | None = None):
        self.base_url = _base_url(api or os.environ.get("EXPERTD_API") or DEFAULT_API)
        self.token = token if token is not None else os.environ.get("EXPERTD_API_TOKEN", "")
        if timeout is None:
            try:
                timeout = float(os.environ.get("EXPERTD_RESOLVE_TIMEOUT", DEFAULT_TIMEOUT))
            except ValueError:
                timeout = DEFAULT_TIMEOUT
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT
        self._negative: dict[tuple[str, str], float] = {}
        # No proxy: the daemon is local, and HTTP_PROXY must not see the token.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        key = (base_model_name, lora_name)
        if self._negative.get(key, 0.0) > time.monotonic():
            return None
        try:
            answer = await asyncio.wait_for(
                asyncio.to_thread(self._ask, base_model_name, lora_name), self.timeout
            )
        except asyncio.CancelledError:
            raise  # the client went away: vLLM releases its lock
        except Exception as e:  # noqa: BLE001 - vLLM must never see it
            logger.warning("expertd: resolving %r for %r failed: %r", lora_name, base_model_name, e)
            answer = None
        if answer is None:
            self._negative[key] = time.monotonic() + NEGATIVE_TTL
            if len(self._negative) > 4096:
                now = time.monotonic()
                self._negative = {k: v for k, v in self._negative.items() if v > now}
            return None
        path, cid, lid = answer.get("path"), answer.get("cid", ""), answer.get("lora_int_id")
        if not isinstance(path, str) or not os.path.isabs(path):
            logger.warning("expertd: resolving %r: the daemon gave no absolute path: %r", lora_name, answer)
            return None
        if not isinstance(lid, int) or isinstance(lid, bool) or lid < 1:
            lid = lora_int_id(str(cid))
        logger.info("expertd: %r resolved to %s (%s)", lora_name, path, cid)
        return LoRARequest(lora_name=lora_name, lora_int_id=lid, lora_path=path)

    def _ask(self, base_model_name: str, lora_name: str) -> dict | None:
        """POST /v1/resolve/{name}: the daemon's answer, or None when it has
        no trusted expert of that name for that base (404). Other refusals
        are logged and None too. Runs in a thread."""
        url = self.base_url + "/v1/resolve/" + urllib.parse.quote(lora_name, safe="")
        body = json.dumps({"base_model": base_model_name}).encode()
        req = urllib.request.Request(url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                data = resp.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as e:
            detail = e.read(4096).decode("utf-8", "replace").strip()
            if e.code != 404:
                logger.warning("expertd: resolve %r: HTTP %d: %s", lora_name, e.code, detail)
            return None
        if len(data) > MAX_ANSWER:
            raise ValueError("answer over %d bytes" % MAX_ANSWER)
        answer = json.loads(data)
        if not isinstance(answer, dict):
            raise ValueError("answer is not a JSON object")
        return answer


def register() -> None:
    """vLLM's general plugin entry point (group vllm.general_plugins): it
    runs in every vLLM process, must be cheap, and must not raise."""
    try:
        if RESOLVER_NAME not in LoRAResolverRegistry.get_supported_resolvers():
            LoRAResolverRegistry.register_resolver(RESOLVER_NAME, ExpertdResolver())
    except Exception:  # noqa: BLE001 - an exception here aborts vLLM's start
        logger.exception("expertd: registering the LoRA resolver failed")

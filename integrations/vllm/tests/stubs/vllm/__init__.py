"""A minimal stand-in of vLLM for expertd's plugin tests: only the two
modules the plugin imports, vllm.lora.request and vllm.lora.resolver, written
from vLLM's own (upstream commit 9aaf83ef5, the v0.22 cycle). It is on
sys.path only in tests; a real vLLM installation never sees it."""

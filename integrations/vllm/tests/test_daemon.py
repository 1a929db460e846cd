"""The resolver against a real expertd daemon, run by the Go test
TestVLLMPlugin (cmd/expertd), which starts the daemons and sets:

    EXPERTD_API             the daemon beside "vLLM" (the resolver's own setting)
    EXPERTD_TEST_NAME       an expert only another daemon holds
    EXPERTD_TEST_BASE       the served model (`vllm serve`'s model argument)
    EXPERTD_TEST_ADAPTERS   the daemon's inference.adapters_dir
"""

import asyncio
import os
import unittest

import expertd_vllm
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolverRegistry

from tests.driver import Models

ENV = ("EXPERTD_API", "EXPERTD_TEST_NAME", "EXPERTD_TEST_BASE", "EXPERTD_TEST_ADAPTERS")


@unittest.skipUnless(all(os.environ.get(k) for k in ENV), "run by cmd/expertd's TestVLLMPlugin, with daemons")
class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.name = os.environ["EXPERTD_TEST_NAME"]
        self.base = os.environ["EXPERTD_TEST_BASE"]
        self.versions = os.path.realpath(os.path.join(os.environ["EXPERTD_TEST_ADAPTERS"], ".versions"))
        LoRAResolverRegistry.resolvers.clear()
        expertd_vllm.register()  # as vLLM's load_general_plugins does: settings from the environment
        self.addCleanup(LoRAResolverRegistry.resolvers.clear)

    def test_fetched_written_and_loaded(self):
        """A name only another node holds: the daemon fetches it, writes
        it, and vLLM's resolution registers it."""
        models = Models(self.base)
        self.assertIsNone(asyncio.run(models.check_model(self.name)))
        req = models.lora_requests[self.name]
        self.assertEqual(req.lora_name, self.name)
        self.assertEqual(os.path.dirname(os.path.realpath(req.lora_path)), self.versions)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            self.assertTrue(os.path.isfile(os.path.join(req.lora_path, f)), f)
        self.assertTrue(os.path.isfile(os.path.join(os.environ["EXPERTD_TEST_ADAPTERS"], self.name, "adapter_config.json")))

    def test_stable_id(self):
        r = LoRAResolverRegistry.get_resolver("expertd")
        a = asyncio.run(r.resolve_lora(self.base, self.name))
        b = asyncio.run(r.resolve_lora(self.base, self.name))
        self.assertIsInstance(a, LoRARequest)
        self.assertGreater(a.lora_int_id, 0)
        self.assertEqual((a.lora_int_id, a.lora_path), (b.lora_int_id, b.lora_path))

    def test_other_base(self):
        r = LoRAResolverRegistry.get_resolver("expertd")
        self.assertIsNone(asyncio.run(r.resolve_lora("meta-llama/Llama-3.2-1B", self.name)))

    def test_unknown(self):
        models = Models(self.base)
        err = asyncio.run(models.check_model("no-such-expert"))
        self.assertEqual(err["code"], 404)
        self.assertEqual(err["message"], "The model `no-such-expert` does not exist.")
        self.assertNotIn("no-such-expert", models.lora_requests)


if __name__ == "__main__":
    unittest.main()

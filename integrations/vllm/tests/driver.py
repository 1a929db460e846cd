"""How vLLM's API server uses resolvers, for the plugin's tests: a
transcription of OpenAIServingModels.resolve_lora and
OpenAIServing._check_model (vllm/entrypoints/openai/models/serving.py
269-331 and engine/serving.py 218-246 at 9aaf83ef5), with add_lora replaced
by a check that the adapter directory holds an adapter_config.json (the
first thing the engine reads; a missing one is LoRAAdapterNotFoundError)."""

import asyncio
import os
from collections import defaultdict

from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolverRegistry


class Models:
    """The part of OpenAIServingModels that resolvers meet."""

    def __init__(self, model: str, served: list[str] | None = None):
        self.model = model  # model_config.model: `vllm serve`'s model argument
        self.served = served or [model]
        self.lora_requests: dict[str, LoRARequest] = {}
        self.lora_resolver_lock: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.counter = 0
        self.resolvers = [LoRAResolverRegistry.get_resolver(n) for n in LoRAResolverRegistry.get_supported_resolvers()]

    async def add_lora(self, req: LoRARequest) -> None:
        if not os.path.isfile(os.path.join(req.lora_path, "adapter_config.json")):
            raise FileNotFoundError(f"No adapter found for {req.lora_path}")

    async def resolve_lora(self, lora_name: str):
        """LoRARequest, or an error dict (the ErrorResponse's error)."""
        async with self.lora_resolver_lock[lora_name]:
            if lora_name in self.lora_requests:
                return self.lora_requests[lora_name]
            base_model_name = self.model
            self.counter += 1
            unique_id = self.counter
            found = False
            for resolver in self.resolvers:
                req = await resolver.resolve_lora(base_model_name, lora_name)  # not caught, as in vLLM
                if req is not None:
                    found = True
                    req.lora_int_id = unique_id
                    try:
                        await self.add_lora(req)
                        self.lora_requests[lora_name] = req
                        return req
                    except BaseException:
                        continue
            if found:
                return {"message": f"LoRA adapter '{lora_name}' was found but could not be loaded.",
                        "type": "BadRequestError", "param": None, "code": 400}
            return {"message": f"LoRA adapter {lora_name} does not exist", "type": "NotFoundError",
                    "param": None, "code": 404}

    async def check_model(self, model: str):
        """None if a request naming model may proceed, else its error."""
        if not model or model in self.served:
            return None
        if model in self.lora_requests:
            return None
        result = await self.resolve_lora(model)
        if isinstance(result, LoRARequest):
            return None
        if result.get("code") == 400:
            return result
        return {"message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                "param": "model", "code": 404}

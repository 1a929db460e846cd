"""Stand-in of vllm/lora/resolver.py at vLLM 9aaf83ef5 (lines 14-88),
unchanged in substance since vLLM PR #10546 (about v0.8.5)."""

import logging
from abc import ABC, abstractmethod
from collections.abc import Set
from dataclasses import dataclass, field

from vllm.lora.request import LoRARequest

logger = logging.getLogger(__name__)


class LoRAResolver(ABC):
    """Base class for LoRA adapter resolvers."""

    @abstractmethod
    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        """Abstract method to resolve and fetch a LoRA model adapter."""


@dataclass
class _LoRAResolverRegistry:
    resolvers: dict[str, LoRAResolver] = field(default_factory=dict)

    def get_supported_resolvers(self) -> Set[str]:
        return self.resolvers.keys()

    def register_resolver(self, resolver_name: str, resolver: LoRAResolver) -> None:
        if resolver_name in self.resolvers:
            logger.warning(
                "LoRA resolver %s is already registered, and will be overwritten by the new resolver instance %s.",
                resolver_name,
                resolver,
            )
        self.resolvers[resolver_name] = resolver

    def get_resolver(self, resolver_name: str) -> LoRAResolver:
        if resolver_name not in self.resolvers:
            raise KeyError(
                f"LoRA resolver '{resolver_name}' not found. "
                f"Available resolvers: {list(self.resolvers.keys())}"
            )
        return self.resolvers[resolver_name]


LoRAResolverRegistry = _LoRAResolverRegistry()

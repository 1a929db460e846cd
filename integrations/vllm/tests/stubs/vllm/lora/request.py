"""Stand-in of vllm/lora/request.py at vLLM 9aaf83ef5 (lines 8-73).

vLLM's LoRARequest is a msgspec.Struct(omit_defaults=True, array_like=True):
keyword arguments only (array_like makes positional use fragile), lora_int_id
must be > 0 (since vLLM PR #25045, about v0.11.0), lora_path must not be
empty, and equality and hashing use lora_name alone. A keyword-only
dataclass keeps those properties without msgspec.
"""

from dataclasses import dataclass


@dataclass(kw_only=True, eq=False)
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""
    base_model_name: str | None = None
    tensorizer_config_dict: dict | None = None
    load_inplace: bool = False
    is_3d_lora_weight: bool = False

    def __post_init__(self):
        if self.lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {self.lora_int_id}")
        assert self.lora_path, "lora_path cannot be empty"

    @property
    def adapter_id(self):
        return self.lora_int_id

    @property
    def name(self):
        return self.lora_name

    @property
    def path(self):
        return self.lora_path

    def __eq__(self, value: object) -> bool:
        return isinstance(value, self.__class__) and self.lora_name == value.lora_name

    def __hash__(self) -> int:
        return hash(self.lora_name)

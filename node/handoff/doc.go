// Package handoff hands experts to an inference server on the same machine:
// it materializes each as a PEFT adapter directory DIR/<name>/ and, when a
// vLLM URL is configured, asks vLLM to load or unload it.
//
// # Layout
//
// DIR/<name>/ holds adapter_config.json, adapter_model.safetensors and
// .expertd.json, a marker naming the expert's CID. This is the layout read by
// vLLM's lora_filesystem_resolver (VLLM_PLUGINS=lora_filesystem_resolver,
// VLLM_LORA_RESOLVER_CACHE_DIR=DIR) and by LoRAX (adapter_source: local).
// A directory is written under a temporary name in DIR (".expertd-tmp-*")
// and renamed into place when complete, so a server never sees a partial
// adapter. <name> is SanitizeName of the expert's name; a name whose
// directory holds another CID, or a directory expertd did not write, is a
// conflict (ErrConflict) and is never overwritten.
//
// What vLLM reads, as relied on here (vllm-project/vllm):
//   - vllm/plugins/lora_resolvers/filesystem_resolver.py: for a request naming
//     an unknown adapter "foo" it loads DIR/foo when
//     DIR/foo/adapter_config.json has peft_type == "LORA" and
//     base_model_name_or_path == the served model's model_config.model (the
//     model argument of `vllm serve`), so Options.ServedModel is written there.
//   - docs/features/lora.md ("Dynamically serving LoRA Adapters"): with
//     VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, POST /v1/load_lora_adapter
//     {"lora_name","lora_path"} and POST /v1/unload_lora_adapter {"lora_name"}
//     answer 200 with a plain-text "Success: LoRA adapter 'x' added
//     successfully." (or "removed"); without that variable the routes do not
//     exist (attach_router in vllm/entrypoints/serve/lora/api_router.py,
//     lately vllm/frontend/entrypoints/serve/lora/api_router.py, registers
//     nothing), so they answer FastAPI's 404 {"detail":"Not Found"}.
//   - vllm/entrypoints/openai/models/serving.py (and the older
//     serving_models.py): errors are an ErrorResponse, either flat
//     {"object":"error","message","type","param","code"} (older releases) or
//     nested {"error":{"message","type","param","code"}} (newer), with the
//     HTTP status equal to code. Loading a name already loaded is a 400 whose
//     message says it "has already been loaded"; unloading an unknown name is
//     a 404 NotFoundError "... cannot be found."; a path without an adapter is
//     a 404 NotFoundError; an adapter the engine refuses is a 400
//     BadRequestError (older) or a 500 InternalServerError (newer).
//
// # vLLM calls
//
// Serve runs the calls one at a time. Each adapter has a wanted state, so a
// Remove that arrives before its load was sent cancels the load, and a name
// re-materialized with another CID is unloaded before it is loaded again.
// Only LoRA adapters are sent: vLLM loads nothing else; IA3 and other types
// are materialized for servers that load them (LoRAX) and their status says
// why they were not sent. Outcomes:
//   - 2xx: done.
//   - load answered 400 "already been loaded" (the adapter survived a
//     restart of expertd): loaded.
//   - unload answered 404/400 not found: done (nothing was loaded).
//   - no answer (connection refused, timeout), 429, 502, 503, 504, or a 5xx
//     that is not a vLLM ErrorResponse: vLLM is down or starting; every call
//     waits, with exponential backoff from Options.Backoff to
//     Options.MaxBackoff, and is retried until Serve's context ends.
//   - any other answer (400 bad adapter, 404 no such route, 401, a vLLM 500):
//     failed; recorded in Status and Stats and not retried. Materializing
//     the same expert again queues a new attempt.
//
// vLLM forgets runtime-loaded adapters when it restarts. Every
// Options.Check, Serve lists vLLM's models (GET /v1/models, whose IDs are
// the served models and the loaded adapters' lora_name) and queues a load
// for each adapter it had acknowledged that is missing there.
package handoff

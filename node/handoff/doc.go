// Package handoff hands experts to an inference server on the same machine:
// it writes each as a PEFT LoRA adapter under an adapters directory DIR and,
// when a vLLM URL is configured, asks vLLM to load or unload it.
//
// # What is handed off
//
// A Policy decides, before anything is fetched (CheckAnnounced, on what
// gossip tells) and before anything is written (CheckHeader, on the
// container's config and tensor shapes): only LoRA adapters (vLLM and LoRAX
// load nothing else: not IA3, not a full fine-tuning residual), for the
// served base model or one of its aliases (an adapter with no base only
// under AcceptUnknownBase), that vLLM's PEFTHelper.validate_legal and
// weight loader accept, and none that vLLM would load silently wrong
// (init_lora_weights needing a modified base, aLoRA, layer_replication,
// QALoRA). A refused expert is never written; Refused says why. The
// adapter_config.json is written as published, except for the base model:
// filled in for an adapter with none (under AcceptUnknownBase), the served
// model's name for an alias. The base of any other adapter is never
// rewritten: vLLM does not check it on load, and an adapter for another
// base either fails on the GPU or, with smaller modules, serves garbage.
//
// # Layout
//
// DIR/.versions/<cid>-<tag>/ holds adapter_config.json,
// adapter_model.safetensors and .expertd.json (a marker naming the CID);
// <tag> is a hash of the write settings (dtype, base written). DIR/<name> is
// a relative symbolic link to the version the name serves, so
// DIR/<name>/adapter_config.json is what vLLM's lora_filesystem_resolver
// (VLLM_LORA_RESOLVER_CACHE_DIR=DIR) and LoRAX (adapter_source local) read.
// A version is written under a temporary name and renamed into place when
// complete, then never changed; a name moves to another version with one
// rename of its link, and a version no name points at is deleted only
// Options.Grace later, since vLLM reads lora_path again when it reloads an
// adapter and dies if it is gone. <name> is SanitizeName of the expert's
// name, held by the expert its link points at until the expert is removed,
// and by its line of versions (MaterializeVersion: a publisher's experts
// of one name, numbered): the name moves only to a newer version of that
// line. Anything else under the same name (another publisher's expert, an
// older version, an expert of no line, the name under another case), or a
// name that is not expertd's link, is a conflict (ErrConflict) and is
// never overwritten. vLLM is given the version directory as
// Options.ServerDir names it (the server's own mount).
//
// What vLLM does, as relied on here (vllm-project/vllm at 9aaf83ef5, the
// v0.22 cycle, and older releases; the fakevllm package mirrors it):
//   - vllm/plugins/lora_resolvers/filesystem_resolver.py loads DIR/<name>
//     for a request naming an unknown adapter when its adapter_config.json
//     has peft_type "LORA" and base_model_name_or_path equal to the
//     `vllm serve` model argument, byte for byte.
//   - With VLLM_ALLOW_RUNTIME_LORA_UPDATING, POST /v1/load_lora_adapter
//     {"lora_name","lora_path"[,"load_inplace"]} and
//     /v1/unload_lora_adapter {"lora_name"} answer 200 with a plain-text
//     "Success: ..."; without it the routes do not exist (404
//     {"detail":"Not Found"}). The load route checks no base model.
//   - Errors are an ErrorResponse, flat {"object":"error",...} (≤ v0.10.0)
//     or nested {"error":{...}}, with the HTTP status in code. Loading a
//     name already loaded is a 400 "has already been loaded" (with a hint
//     to set load_inplace where it is supported, ≈v0.15 on); unloading an
//     unknown name is a 404 "cannot be found"; a path without an adapter
//     is a 404 NotFoundError; an adapter the engine refuses is a 400
//     BadRequestError (≤ ≈v0.17) or a 500 InternalServerError.
//
// # vLLM calls
//
// Serve runs the calls one at a time. Each adapter has a wanted state, so
// a Remove that arrives before its load was sent cancels the load. A name
// moved to a new version is loaded in place (load_inplace), so it is served
// throughout. Outcomes:
//   - 2xx: done.
//   - load answered 400 "already been loaded": vLLM's model list says from
//     which path. This version (a restart of expertd) or the name's link
//     (the filesystem resolver): done. Other files: loaded in place if
//     vLLM says it can, else unloaded and loaded (vLLM ≤ v0.14 ignores
//     load_inplace).
//   - unload answered 404/400 not found: done (nothing was loaded).
//   - no answer (connection refused, timeout), 429, 502, 503, 504, a 5xx
//     that is not a vLLM ErrorResponse, or "Server shutting down": vLLM is
//     down or starting; every call waits, with exponential backoff from
//     Options.Backoff to Options.MaxBackoff, and is retried until Serve's
//     context ends.
//   - any other answer (400 bad adapter, 404 no such route, 401, a vLLM
//     500): failed; recorded in Status and Stats and not retried.
//     Materializing the same expert again queues a new attempt.
//
// vLLM forgets runtime-loaded adapters when it restarts. Every
// Options.Check, Serve lists vLLM's models (GET /v1/models, whose cards
// give each adapter's lora_name and lora_path) and loads again each
// adapter it had acknowledged that is missing there, or held from other
// files.
package handoff

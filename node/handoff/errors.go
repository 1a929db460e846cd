package handoff

import "errors"

// Sentinel errors; returned errors wrap them with details.
var (
	// ErrDisabled: hand-off is off (Options.Dir is empty).
	ErrDisabled = errors.New("handoff: no adapters directory configured")
	// ErrName: an expert name leaves nothing usable as a directory name.
	ErrName = errors.New("handoff: unusable adapter name")
	// ErrConflict: the adapter directory for a name holds another expert, or
	// a directory expertd did not write. It is left untouched.
	ErrConflict = errors.New("handoff: adapter name taken")
	// ErrSuperseded: the adapter name is held by a newer version of the
	// expert's line (it comes with ErrConflict).
	ErrSuperseded = errors.New("handoff: a newer version holds the name")
	// ErrNotAdapter: the container is not a PEFT adapter (for example a full
	// fine-tuning residual, which needs its base model).
	ErrNotAdapter = errors.New("handoff: not a PEFT adapter")
	// ErrRefused: the expert is not handed to the inference server (a
	// *Refusal says why: another base model, a rank over the limit...).
	ErrRefused = errors.New("handoff: not handed to the inference server")
	// ErrVLLM: vLLM refused a load or unload call.
	ErrVLLM = errors.New("handoff: vLLM refused the call")
	// ErrUnavailable: vLLM did not answer, or answered that it cannot serve
	// now; the call is retried.
	ErrUnavailable = errors.New("handoff: vLLM unavailable")
	// ErrRule: a prefetch rule is malformed.
	ErrRule = errors.New("handoff: bad prefetch rule")
)

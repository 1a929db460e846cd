package compress

// Summary is what inspect reports about a container.
type Summary struct {
	PeftType     string  `json:"peft_type"`
	Tensors      int     `json:"tensors"`
	Params       int64   `json:"params"`
	Kept         int64   `json:"kept"`
	Density      float64 `json:"density"`       // requested
	KeptFraction float64 `json:"kept_fraction"` // kept / params
	Alpha        string  `json:"alpha"`
	Scope        string  `json:"scope"`
	Scale        float64 `json:"scale,omitempty"` // the one scale of a global-scope container
	ScaleMin     float64 `json:"scale_min"`
	ScaleMax     float64 `json:"scale_max"`
	FileBytes    int64   `json:"file_bytes"`
	PayloadBytes int64   `json:"payload_bytes"`
	HeaderBytes  int64   `json:"header_bytes"` // everything but payloads
	SourceBytes  int64   `json:"source_bytes,omitempty"`
	BitsPerParam float64 `json:"bits_per_param"`         // whole file
	RatioSource  float64 `json:"ratio_source,omitempty"` // source file / container
	RatioFP16    float64 `json:"ratio_fp16"`             // params*2 bytes / container
	BoundBytes   float64 `json:"bound_bytes"`            // n*(H(d)+d)/8 for d = kept fraction
	RatioBound   float64 `json:"ratio_bound"`            // payload / bound
	Base         string  `json:"base_fingerprint,omitempty"`
}

// Summarize computes a Summary from a header and the container's size.
func Summarize(h *Header, fileSize int64) Summary {
	s := Summary{PeftType: h.PeftType, Tensors: len(h.Tensors), Density: h.Density, Alpha: h.Alpha, Scope: h.Scope,
		FileBytes: fileSize, SourceBytes: h.SourceBytes, Base: h.Base}
	for i := range h.Tensors {
		t := &h.Tensors[i]
		s.Params += t.Elements()
		s.Kept += t.Kept
		s.PayloadBytes += t.Bytes
		if i == 0 || t.Scale < s.ScaleMin {
			s.ScaleMin = t.Scale
		}
		if t.Scale > s.ScaleMax {
			s.ScaleMax = t.Scale
		}
	}
	if h.Scope == ScopeGlobal {
		s.Scale = s.ScaleMax
	}
	s.HeaderBytes = fileSize - s.PayloadBytes
	if s.Params > 0 {
		s.KeptFraction = float64(s.Kept) / float64(s.Params)
		s.BitsPerParam = float64(fileSize*8) / float64(s.Params)
	}
	if fileSize > 0 {
		s.RatioSource = float64(h.SourceBytes) / float64(fileSize)
		s.RatioFP16 = float64(s.Params*2) / float64(fileSize)
	}
	s.BoundBytes = BoundBits(s.Params, s.Kept) / 8
	if s.BoundBytes > 0 {
		s.RatioBound = float64(s.PayloadBytes) / s.BoundBytes
	}
	return s
}

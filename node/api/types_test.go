package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/expertd/expertd/node/expert"
)

// TestExpertJSON pins the field names and order of an Expert in the API's
// JSON, full and with every optional field zero: clients read them.
func TestExpertJSON(t *testing.T) {
	full := Expert{
		CID: "bafkfull", Metadata: expert.Metadata{
			Name: "python", PeftType: "LORA", BaseModel: "gpt2", Rank: 16,
			TargetModules: []string{"c_attn", "c_proj"}, Params: 589824, Density: 0.1, Size: 123456,
		},
		Publisher: "12D3KooWpub", Version: 2, Added: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Local: true, Signed: true, Trusted: true, Pinned: true,
		NotHandedOff: &Refusal{Reason: "rank", Detail: "rank 16 over 8"},
		Providers:    []string{"12D3KooWa", "12D3KooWb"}, ProviderCount: 3,
		Merge: &Merge{Method: "ties", Parents: []string{"bafka", ""}},
	}
	const fullJSON = `{"cid":"bafkfull","name":"python","peft_type":"LORA","base_model":"gpt2","rank":16,` +
		`"target_modules":["c_attn","c_proj"],"params":589824,"density":0.1,"size":123456,` +
		`"publisher":"12D3KooWpub","version":2,"added":"2026-01-02T03:04:05Z","local":true,"signed":true,` +
		`"trusted":true,"pinned":true,"not_handed_off":{"reason":"rank","detail":"rank 16 over 8"},` +
		`"providers":["12D3KooWa","12D3KooWb"],"provider_count":3,"merge":{"method":"ties","parents":["bafka",""]}}`
	const zeroJSON = `{"cid":"bafkzero","size":0,"local":false,"signed":false,"trusted":false,"pinned":false}`
	for _, tc := range []struct {
		e    Expert
		want string
	}{{full, fullJSON}, {Expert{CID: "bafkzero"}, zeroJSON}} {
		b, err := json.Marshal(tc.e)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("JSON of %s:\n got %s\nwant %s", tc.e.CID, b, tc.want)
		}
		var back Expert
		if err := json.Unmarshal([]byte(tc.want), &back); err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); string(b2) != tc.want {
			t.Errorf("%s does not read back: %s", tc.e.CID, b2)
		}
	}
}

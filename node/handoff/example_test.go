package handoff_test

import (
	"fmt"

	"github.com/expertd/expertd/node/handoff"
)

func ExampleMatch() {
	rules, err := handoff.ParseRules([]string{"name=python-*", "base_model=meta-llama/*"})
	if err != nil {
		panic(err)
	}
	fmt.Println(handoff.Match(rules, handoff.Candidate{Name: "python-lora"}))
	fmt.Println(handoff.Match(rules, handoff.Candidate{Name: "sql", BaseModel: "meta-llama/Llama-3.2-1B"}))
	fmt.Println(handoff.Match(rules, handoff.Candidate{Name: "sql", BaseModel: "gpt2"}))
	// Output:
	// true
	// true
	// false
}

func ExampleSanitizeName() {
	for _, name := range []string{"python-lora", "org/model v2", "../etc", "日本"} {
		fmt.Println(handoff.SanitizeName(name))
	}
	// Output:
	// python-lora <nil>
	// org_model_v2 <nil>
	// _etc <nil>
	//  handoff: unusable adapter name: "日本" has no letter or digit
}

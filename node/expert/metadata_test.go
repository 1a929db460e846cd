package expert

import (
	"reflect"
	"testing"
)

func TestEqual(t *testing.T) {
	m := Metadata{
		Name: "python", PeftType: "LORA", BaseModel: "gpt2", Rank: 16,
		TargetModules: []string{"c_attn"}, Params: 589824, Density: 0.1, Size: 123456,
	}
	if !m.Equal(m) {
		t.Fatal("m differs from itself")
	}
	// Each field, changed alone, makes a difference: Equal misses none.
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		o := m
		o.TargetModules = []string{"c_attn"}
		f := reflect.ValueOf(&o).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Float64:
			f.SetFloat(f.Float() / 2)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"c_proj"}))
		default:
			t.Fatalf("field %s of kind %s: teach this test", v.Type().Field(i).Name, f.Kind())
		}
		if m.Equal(o) {
			t.Errorf("a different %s is Equal", v.Type().Field(i).Name)
		}
	}
	if !(Metadata{}).Equal(Metadata{TargetModules: []string{}}) {
		t.Error("nil and empty target modules differ")
	}
}

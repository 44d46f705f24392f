package strictjson

import "testing"

func TestDecode(t *testing.T) {
	type T struct {
		A int `json:"a"`
	}
	var v T
	if err := Decode([]byte(` {"a": 1} `), &v); err != nil || v.A != 1 {
		t.Fatalf("good value: %+v %v", v, err)
	}
	for _, bad := range []string{`{"a": 1, "b": 2}`, `{"a": 1} {}`, `{"a": 1} }`, `{"a": "x"}`, `{"a": `, ``} {
		if err := Decode([]byte(bad), &v); err == nil {
			t.Errorf("%q: decoded", bad)
		}
	}
}

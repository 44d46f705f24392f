package gateway

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A minimal plugin (testdata/probe) checks host behaviour the filter does
// not exercise: an import this host does not know, properties, the clock,
// queue notifications delivered after the enqueueing call returns (never
// re-entrantly), and ticks.
func TestHostFunctionsThroughAProbePlugin(t *testing.T) {
	wasm := buildWasm(t, "probe.wasm", "-buildmode=c-shared", "./testdata/probe")
	g, err := New(t.Context(), Config{
		Wasm: wasm, PluginConfig: []byte("{}"), Workers: 1, VMID: "probe-vm",
		Properties: map[string]string{"probe.answer": "42"}, Upstream: "http://127.0.0.1:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	messages := func() []string {
		var out []string
		for _, l := range g.Logs() {
			out = append(out, l.Message)
		}
		return out
	}
	waitFor(t, 5*time.Second, "the probe's tick", func() bool { return slices.Contains(messages(), "tick") })
	got := messages()
	for _, want := range []string{
		"made_up=12", "property=42", "vm_id=probe-vm", "missing=status 1", "enqueue=0",
		"queue_ready during_enqueue=false", "tick",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("the probe did not log %q; it logged %q", want, got)
		}
	}
	var clock bool
	for _, m := range got {
		if s, ok := strings.CutPrefix(m, "time="); ok {
			ns, _ := strconv.ParseInt(s, 10, 64)
			clock = time.Since(time.Unix(0, ns)).Abs() < time.Minute
		}
	}
	if !clock {
		t.Errorf("proxy_get_current_time_nanoseconds is not the wall clock: %q", got)
	}
}

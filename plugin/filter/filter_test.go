package filter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// Every test body here runs twice, through vmTest: natively, with the
// filter's Go code behind the SDK's host emulator, and against the compiled
// plugin.wasm, which proxytest runs under wazero behind the same emulator.
// The emulator is process-global and holds a lock from NewHostEmulator until
// its reset, so these tests must not run in parallel.
//
// When running the compiled binary, the emulator keeps views into the
// guest's linear memory instead of copies (log messages, a local response's
// body), which the guest may reuse on its next call. Tests therefore read and
// copy what they check right after the call that produced it.

// vmTest runs body natively ("go") and against the compiled plugin
// ("wasm"), each with a fresh VM. With hooks, testHook is installed natively
// and the wasm build carries -tags knaight_testhooks.
func vmTest(t *testing.T, hooks bool, body func(t *testing.T, vm types.VMContext)) {
	t.Helper()
	t.Run("go", func(t *testing.T) {
		testNow = time.Now
		if hooks {
			testHook = panicWhenAsked
			t.Cleanup(func() { testHook = nil })
		}
		body(t, NewVMContext())
	})
	t.Run("wasm", func(t *testing.T) {
		wasm := compiledPlugin(t, hooks)
		vm, err := proxytest.NewWasmVMContext(wasm)
		if err != nil {
			t.Fatalf("loading plugin.wasm: %v", err)
		}
		t.Cleanup(func() { _ = vm.Close() })
		var ticks time.Duration
		testNow = func() time.Time { ticks += time.Millisecond; return guestEpoch.Add(ticks) }
		t.Cleanup(func() { testNow = time.Now })
		body(t, vm)
	})
}

// newHost starts an emulator for vm with the plugin configuration config and
// the given host properties, and starts the VM. It does not start the plugin.
func newHost(t *testing.T, vm types.VMContext, config string, props map[string]string) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration([]byte(config))
	for k, v := range props {
		opt = opt.WithProperty([]string{k}, []byte(v))
	}
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if got := host.StartVM(); got != types.OnVMStartStatusOK {
		t.Fatalf("StartVM = %v", got)
	}
	return host
}

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func containsLog(logs []string, substr string) bool {
	return slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, substr) })
}

// builds caches the compiled plugin, once per set of build tags, for the
// whole test binary: building takes seconds (more on a cold cache).
var builds = struct {
	sync.Mutex
	wasm map[bool][]byte
}{wasm: map[bool][]byte{}}

// compiledPlugin builds the plugin's main package exactly as make wasm does
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared), with -tags
// knaight_testhooks if hooks, and returns the binary.
func compiledPlugin(t *testing.T, hooks bool) []byte {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if wasm, ok := builds.wasm[hooks]; ok {
		return wasm
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build plugin.wasm: %v", err)
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if hooks {
		args = append(args, "-tags", "knaight_testhooks")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/knaight/knaight/plugin")...)
	cmd.Dir = ".." // the plugin module, so that its go.mod (or the workspace) applies
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built plugin.wasm (%d bytes, hooks=%v) in %v", len(wasm), hooks, time.Since(start).Round(time.Millisecond))
	builds.wasm[hooks] = wasm
	return wasm
}

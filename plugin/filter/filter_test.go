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
		testNow = guestClock()
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

// builds caches compiled modules, per package and build tags, for the
// whole test binary: building takes seconds (more on a cold cache).
var builds = struct {
	sync.Mutex
	wasm map[string][]byte
}{wasm: map[string][]byte{}}

// compiledPlugin builds the plugin's main package exactly as make wasm does
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared), with -tags
// knaight_testhooks if hooks, and returns the binary.
func compiledPlugin(tb testing.TB, hooks bool) []byte {
	tags := ""
	if hooks {
		tags = "knaight_testhooks"
	}
	return compiledModule(tb, "github.com/knaight/knaight/plugin", tags)
}

// compiledModule builds pkg for wasip1 as a reactor (c-shared) with tags.
func compiledModule(tb testing.TB, pkg, tags string) []byte {
	tb.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := pkg + " " + tags
	if wasm, ok := builds.wasm[key]; ok {
		return wasm
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("the go command is needed to build %s: %v", pkg, err)
	}
	out := filepath.Join(tb.TempDir(), "module.wasm")
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, pkg)...)
	cmd.Dir = ".." // the plugin module, so that its go.mod (or the workspace) applies
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("built %s (%d bytes, tags %q) in %v", pkg, len(wasm), tags, time.Since(start).Round(time.Millisecond))
	builds.wasm[key] = wasm
	return wasm
}

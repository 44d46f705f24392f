package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// This file is the host side of the proxy-wasm ABI, version 0.2.1 as
// github.com/proxy-wasm/proxy-wasm-go-sdk speaks it, implemented from the
// SDK's import declarations and Envoy's behaviour (proxy-wasm-cpp-host).
//
// The filter (plugin.wasm built from this repository, November 2026)
// imports from module "env":
//
//	proxy_define_metric             proxy_log
//	proxy_dequeue_shared_queue      proxy_register_shared_queue
//	proxy_enqueue_shared_queue      proxy_remove_header_map_value
//	proxy_get_buffer_bytes          proxy_replace_header_map_value
//	proxy_get_header_map_pairs      proxy_send_local_response
//	proxy_get_header_map_value      proxy_set_effective_context
//	proxy_get_metric                proxy_set_shared_data
//	proxy_get_shared_data           proxy_set_tick_period_milliseconds
//	proxy_http_call                 proxy_increment_metric
//
// plus proxy_get_property in the build with -tags knaight_testhooks, and
// from wasi_snapshot_preview1: args_get, args_sizes_get, clock_time_get,
// environ_get, environ_sizes_get, fd_close, fd_fdstat_get,
// fd_fdstat_set_flags, fd_prestat_dir_name, fd_prestat_get, fd_read,
// fd_write, path_filestat_get, path_open, poll_oneoff, proc_exit,
// random_get and sched_yield (see wasi.go). The Go linker drops the SDK
// functions a plugin does not use, so this host also implements the rest
// of the SDK's imports: proxy_add_header_map_value,
// proxy_set_header_map_pairs, proxy_set_buffer_bytes, proxy_set_property,
// proxy_resolve_shared_queue, proxy_continue_stream, proxy_close_stream,
// proxy_record_metric, proxy_done and proxy_call_foreign_function (always
// NotFound: Envoy's foreign functions are not emulated), and
// proxy_get_current_time_nanoseconds and proxy_get_log_level of the spec.
// Any other import, in "env" or in a module other than WASI, is given a
// function that logs once and answers Unimplemented, so that a newer
// plugin still instantiates.
//
// Host functions return data to the guest as Envoy does: they call the
// guest's proxy_on_memory_allocate (or malloc), copy the data there, and
// store the pointer and size at the out-parameters. Empty data is returned
// as a null pointer and size 0 without allocating.

// status is a proxy-wasm WasmResult.
type status uint32

const (
	statusOK                  status = 0
	statusNotFound            status = 1
	statusBadArgument         status = 2
	statusInvalidMemoryAccess status = 6
	statusEmpty               status = 7
	statusCasMismatch         status = 8
	statusInternalFailure     status = 10
	statusUnimplemented       status = 12
)

// Buffer types of proxy_get_buffer_bytes and proxy_set_buffer_bytes.
const (
	bufferRequestBody      = 0
	bufferResponseBody     = 1
	bufferCallResponseBody = 4
	bufferVMConfiguration  = 6
	bufferPluginConfig     = 7
)

// Map types of the header-map functions.
const (
	mapRequestHeaders       = 0
	mapRequestTrailers      = 1
	mapResponseHeaders      = 2
	mapResponseTrailers     = 3
	mapCallResponseHeaders  = 6
	mapCallResponseTrailers = 7
)

// Stream types of proxy_continue_stream and proxy_close_stream; they index
// stream.resumed.
const (
	dirRequest  = 0
	dirResponse = 1
)

// logLevels are the proxy-wasm log levels by number.
var logLevels = [...]string{"trace", "debug", "info", "warn", "error", "critical"}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = i32
	}
	return t
}

// hostFunc is one function of module "env": its parameter types and an
// implementation that returns a status (every proxy-wasm host function
// returns one).
type hostFunc struct {
	params []api.ValueType
	fn     func(ctx context.Context, v *vm, mem api.Memory, p []uint64) status
}

// instantiateHost instantiates module "env" with the ABI, and stubs for
// every import of the plugin this host does not know.
func (g *Gateway) instantiateHost(ctx context.Context) error {
	funcs := abi()
	builders := map[string]wazero.HostModuleBuilder{}
	env := g.runtime.NewHostModuleBuilder("env")
	builders["env"] = env
	for name, f := range funcs {
		fn := f.fn
		env.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				stack[0] = uint64(fn(ctx, vmFrom(ctx), mod.Memory(), stack))
			}), f.params, i32s(1)).
			WithName(name).
			Export(name)
	}
	var once sync.Map
	for _, imp := range g.compiled.ImportedFunctions() {
		module, name, _ := imp.Import()
		if module == "wasi_snapshot_preview1" || (module == "env" && funcs[name].fn != nil) {
			continue
		}
		b, ok := builders[module]
		if !ok {
			b = g.runtime.NewHostModuleBuilder(module)
			builders[module] = b
		}
		qualified := module + "." + name
		results := imp.ResultTypes()
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
				if _, seen := once.LoadOrStore(qualified, true); !seen {
					v := vmFrom(ctx)
					g.record(v.name, "warn", "gateway: the plugin called "+qualified+", which this host does not implement: answering Unimplemented")
				}
				if len(results) > 0 {
					stack[0] = uint64(statusUnimplemented)
				}
			}), imp.ParamTypes(), results).
			WithName(name).
			Export(name)
	}
	for module, b := range builders {
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("module %s: %w", module, err)
		}
	}
	return nil
}

// abi returns the host functions by name.
func abi() map[string]hostFunc {
	return map[string]hostFunc{
		"proxy_log":                          {i32s(3), proxyLog},
		"proxy_get_log_level":                {i32s(1), proxyGetLogLevel},
		"proxy_set_tick_period_milliseconds": {i32s(1), proxySetTickPeriod},
		"proxy_get_current_time_nanoseconds": {i32s(1), proxyGetCurrentTime},
		"proxy_get_buffer_bytes":             {i32s(5), proxyGetBufferBytes},
		"proxy_set_buffer_bytes":             {i32s(5), proxySetBufferBytes},
		"proxy_get_header_map_pairs":         {i32s(3), proxyGetHeaderMapPairs},
		"proxy_set_header_map_pairs":         {i32s(3), proxySetHeaderMapPairs},
		"proxy_get_header_map_value":         {i32s(5), proxyGetHeaderMapValue},
		"proxy_add_header_map_value":         {i32s(5), proxyAddHeaderMapValue},
		"proxy_replace_header_map_value":     {i32s(5), proxyReplaceHeaderMapValue},
		"proxy_remove_header_map_value":      {i32s(3), proxyRemoveHeaderMapValue},
		"proxy_get_property":                 {i32s(4), proxyGetProperty},
		"proxy_set_property":                 {i32s(4), proxySetProperty},
		"proxy_send_local_response":          {i32s(8), proxySendLocalResponse},
		"proxy_continue_stream":              {i32s(1), proxyContinueStream},
		"proxy_close_stream":                 {i32s(1), proxyCloseStream},
		"proxy_set_effective_context":        {i32s(1), proxySetEffectiveContext},
		"proxy_done":                         {nil, func(context.Context, *vm, api.Memory, []uint64) status { return statusOK }},
		"proxy_get_shared_data":              {i32s(5), proxyGetSharedData},
		"proxy_set_shared_data":              {i32s(5), proxySetSharedData},
		"proxy_register_shared_queue":        {i32s(3), proxyRegisterSharedQueue},
		"proxy_resolve_shared_queue":         {i32s(5), proxyResolveSharedQueue},
		"proxy_enqueue_shared_queue":         {i32s(3), proxyEnqueueSharedQueue},
		"proxy_dequeue_shared_queue":         {i32s(3), proxyDequeueSharedQueue},
		"proxy_http_call":                    {i32s(10), proxyHTTPCall},
		"proxy_call_foreign_function": {i32s(6), func(context.Context, *vm, api.Memory, []uint64) status {
			return statusNotFound
		}},
		"proxy_define_metric":    {i32s(4), proxyDefineMetric},
		"proxy_increment_metric": {[]api.ValueType{i32, i64}, proxyIncrementMetric},
		"proxy_record_metric":    {[]api.ValueType{i32, i64}, proxyRecordMetric},
		"proxy_get_metric":       {i32s(2), proxyGetMetric},
	}
}

// read copies size bytes of guest memory at ptr.
func read(mem api.Memory, ptr, size uint64) ([]byte, bool) {
	if size == 0 {
		return []byte{}, true
	}
	b, ok := mem.Read(uint32(ptr), uint32(size))
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

// putUint32 writes v at the guest's ptr, as the host functions answer
// a number.
func putUint32(mem api.Memory, ptr uint64, v uint32) status {
	if !mem.WriteUint32Le(uint32(ptr), v) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

func readString(mem api.Memory, ptr, size uint64) (string, bool) {
	b, ok := read(mem, ptr, size)
	return string(b), ok
}

// give returns data to the guest: into memory the guest allocates, with
// the pointer and size stored at ptrPtr and sizePtr.
func (v *vm) give(ctx context.Context, data []byte, ptrPtr, sizePtr uint64) status {
	var ptr uint32
	if len(data) > 0 {
		res, err := v.alloc.Call(ctx, uint64(len(data)))
		if err != nil || len(res) == 0 {
			return statusInternalFailure
		}
		ptr = uint32(res[0])
		if !v.mod.Memory().Write(ptr, data) {
			return statusInvalidMemoryAccess
		}
	}
	mem := v.mod.Memory()
	if !mem.WriteUint32Le(uint32(ptrPtr), ptr) || !mem.WriteUint32Le(uint32(sizePtr), uint32(len(data))) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

func proxyLog(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	msg, ok := readString(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	level := uint32(p[0])
	if int(level) >= len(logLevels) {
		return statusBadArgument
	}
	v.g.record(v.name, logLevels[level], msg)
	return statusOK
}

// proxyGetLogLevel answers the lowest level the logger shows.
func proxyGetLogLevel(ctx context.Context, v *vm, mem api.Memory, p []uint64) status {
	level := uint32(5) // critical
	switch {
	case v.g.log.Enabled(ctx, slog.LevelDebug):
		level = 1
	case v.g.log.Enabled(ctx, slog.LevelInfo):
		level = 2
	case v.g.log.Enabled(ctx, slog.LevelWarn):
		level = 3
	case v.g.log.Enabled(ctx, slog.LevelError):
		level = 4
	}
	return putUint32(mem, p[0], level)
}

func proxySetTickPeriod(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	v.tickPeriod.Store(int64(time.Duration(uint32(p[0])) * time.Millisecond))
	select {
	case v.tickSet <- struct{}{}:
	default:
	}
	return statusOK
}

func proxyGetCurrentTime(_ context.Context, _ *vm, mem api.Memory, p []uint64) status {
	if !mem.WriteUint64Le(uint32(p[0]), uint64(time.Now().UnixNano())) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

// buffer returns the buffer of type t for the current context: the body
// buffers of the current stream, the HTTP call response body during
// proxy_on_http_call_response, and the configurations. Nil is NotFound.
func (v *vm) buffer(t uint32) *[]byte {
	switch t {
	case bufferRequestBody, bufferResponseBody:
		if s := v.streams[v.cur]; s != nil {
			return s.body[t]
		}
	case bufferCallResponseBody:
		if v.call != nil && !v.call.failed {
			return &v.call.body
		}
	case bufferPluginConfig:
		return &v.config
	case bufferVMConfiguration:
		empty := []byte{}
		return &empty
	}
	return nil
}

func proxyGetBufferBytes(ctx context.Context, v *vm, _ api.Memory, p []uint64) status {
	b := v.buffer(uint32(p[0]))
	if b == nil {
		return statusNotFound
	}
	start, n := uint64(uint32(p[1])), uint64(uint32(p[2]))
	size := uint64(len(*b))
	if start > size {
		return statusBadArgument
	}
	n = min(n, size-start)
	if n == 0 {
		return statusOK // as Envoy: the out-parameters are left alone
	}
	return v.give(ctx, (*b)[start:start+n], p[3], p[4])
}

// proxySetBufferBytes changes a body buffer with Envoy's rules (setBuffer):
// start 0 and length 0 prepends, start 0 and a length covering the buffer
// replaces it, start at or past the end appends; anything else is
// BadArgument.
func proxySetBufferBytes(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	t := uint32(p[0])
	if t != bufferRequestBody && t != bufferResponseBody && t != bufferCallResponseBody {
		return statusBadArgument
	}
	b := v.buffer(t)
	if b == nil {
		return statusNotFound
	}
	data, ok := read(mem, p[3], p[4])
	if !ok {
		return statusInvalidMemoryAccess
	}
	out, ok := setBuffer(*b, int(uint32(p[1])), int(uint32(p[2])), data)
	if !ok {
		return statusBadArgument
	}
	*b = out
	return statusOK
}

// setBuffer is Envoy's Buffer::copyFrom.
func setBuffer(b []byte, start, length int, data []byte) ([]byte, bool) {
	switch {
	case start == 0 && length == 0:
		return append(data, b...), true
	case start == 0 && length >= len(b):
		return data, true
	case start >= len(b):
		return append(b, data...), true
	}
	return nil, false
}

// headerMap returns the header map of type t for the current context; nil
// is NotFound.
func (v *vm) headerMap(t uint32) *headerMap {
	switch t {
	case mapRequestHeaders, mapRequestTrailers, mapResponseHeaders, mapResponseTrailers:
		if s := v.streams[v.cur]; s != nil {
			return s.maps[t]
		}
	case mapCallResponseHeaders:
		if v.call != nil && !v.call.failed {
			return &v.call.headers
		}
	case mapCallResponseTrailers:
		if v.call != nil && !v.call.failed {
			return &v.call.trailers
		}
	}
	return nil
}

func proxyGetHeaderMapPairs(ctx context.Context, v *vm, _ api.Memory, p []uint64) status {
	m := v.headerMap(uint32(p[0]))
	if m == nil {
		return statusNotFound
	}
	return v.give(ctx, serializeMap(*m), p[1], p[2])
}

func proxySetHeaderMapPairs(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	m := v.headerMap(uint32(p[0]))
	if m == nil {
		return statusNotFound
	}
	b, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	pairs, ok := deserializeMap(b)
	if !ok {
		return statusBadArgument
	}
	*m = lowerNames(pairs)
	return statusOK
}

func proxyGetHeaderMapValue(ctx context.Context, v *vm, mem api.Memory, p []uint64) status {
	m := v.headerMap(uint32(p[0]))
	if m == nil {
		return statusNotFound
	}
	key, ok := readString(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	value, found := m.get(strings.ToLower(key))
	if !found {
		return statusNotFound
	}
	return v.give(ctx, []byte(value), p[3], p[4])
}

// headerEdit is the common part of add and replace.
func headerEdit(v *vm, mem api.Memory, p []uint64, edit func(m *headerMap, k, val string)) status {
	m := v.headerMap(uint32(p[0]))
	if m == nil {
		return statusNotFound
	}
	key, ok1 := readString(mem, p[1], p[2])
	value, ok2 := readString(mem, p[3], p[4])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	edit(m, strings.ToLower(key), value)
	return statusOK
}

func proxyAddHeaderMapValue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	return headerEdit(v, mem, p, (*headerMap).add)
}

func proxyReplaceHeaderMapValue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	return headerEdit(v, mem, p, (*headerMap).replace)
}

func proxyRemoveHeaderMapValue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	m := v.headerMap(uint32(p[0]))
	if m == nil {
		return statusNotFound
	}
	key, ok := readString(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	m.remove(strings.ToLower(key))
	return statusOK
}

// property answers proxy_get_property for path (its elements joined with
// "."): what the plugin set with proxy_set_property in the current
// context, then Config.Properties, then a few of Envoy's attributes:
// plugin_vm_id, plugin_root_id and plugin_name (empty here), and, in a
// stream, request.path, request.method, request.host, request.scheme,
// request.id and response.code (int64 little-endian, as Envoy encodes
// integers).
func (v *vm) property(path string) ([]byte, bool) {
	s := v.streams[v.cur]
	props := v.props
	if s != nil {
		props = s.props
	}
	if val, ok := props[path]; ok {
		return val, true
	}
	if val, ok := v.g.cfg.Properties[path]; ok {
		return []byte(val), true
	}
	switch path {
	case "plugin_vm_id":
		return []byte(v.g.cfg.VMID), true
	case "plugin_root_id", "plugin_name":
		return []byte{}, true
	}
	if s == nil {
		return nil, false
	}
	req := s.maps[mapRequestHeaders]
	attr := map[string]string{
		"request.path": ":path", "request.method": ":method", "request.host": ":authority",
		"request.scheme": ":scheme", "request.id": "x-request-id",
	}
	if name, ok := attr[path]; ok && req != nil {
		val, ok := req.get(name)
		return []byte(val), ok
	}
	if path == "response.code" && s.maps[mapResponseHeaders] != nil {
		code, _ := s.maps[mapResponseHeaders].get(":status")
		if n, err := strconv.ParseInt(code, 10, 64); err == nil {
			return binary.LittleEndian.AppendUint64(nil, uint64(n)), true
		}
	}
	return nil, false
}

func propertyPath(mem api.Memory, ptr, size uint64) (string, bool) {
	raw, ok := readString(mem, ptr, size)
	return strings.ReplaceAll(raw, "\x00", "."), ok
}

func proxyGetProperty(ctx context.Context, v *vm, mem api.Memory, p []uint64) status {
	path, ok := propertyPath(mem, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	val, found := v.property(path)
	if !found {
		return statusNotFound
	}
	return v.give(ctx, val, p[2], p[3])
}

func proxySetProperty(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	path, ok1 := propertyPath(mem, p[0], p[1])
	val, ok2 := read(mem, p[2], p[3])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	if s := v.streams[v.cur]; s != nil {
		s.props[path] = val
	} else {
		v.props[path] = val
	}
	return statusOK
}

// proxySendLocalResponse records the local response; the stream sends it
// once the current call returns, as Envoy does.
func proxySendLocalResponse(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	s := v.streams[v.cur]
	if s == nil {
		return statusNotFound
	}
	details, ok1 := readString(mem, p[1], p[2])
	body, ok2 := read(mem, p[3], p[4])
	raw, ok3 := read(mem, p[5], p[6])
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemoryAccess
	}
	headers, ok := deserializeMap(raw)
	if !ok {
		return statusBadArgument
	}
	if s.local != nil || s.localSent {
		return statusBadArgument // one local response per stream
	}
	s.local = &localResponse{status: int(uint32(p[0])), details: details, headers: lowerNames(headers), body: body}
	s.signal()
	return statusOK
}

func proxyContinueStream(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	s := v.streams[v.cur]
	if s == nil {
		return statusNotFound
	}
	dir := uint32(p[0])
	if dir != dirRequest && dir != dirResponse {
		return statusUnimplemented
	}
	s.resumed[dir] = true
	s.signal()
	return statusOK
}

// proxyCloseStream resets the stream, as Envoy resets it on
// close_stream of either direction.
func proxyCloseStream(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	s := v.streams[v.cur]
	if s == nil {
		return statusNotFound
	}
	if dir := uint32(p[0]); dir != dirRequest && dir != dirResponse {
		return statusUnimplemented
	}
	s.reset = true
	s.signal()
	return statusOK
}

func proxySetEffectiveContext(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	id := uint32(p[0])
	if id != v.rootID && v.streams[id] == nil {
		return statusBadArgument
	}
	v.cur = id
	return statusOK
}

func proxyGetSharedData(ctx context.Context, v *vm, mem api.Memory, p []uint64) status {
	key, ok := readString(mem, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	data, cas, found := v.g.shared.get(key)
	if !found {
		return statusNotFound
	}
	if st := v.give(ctx, data, p[2], p[3]); st != statusOK {
		return st
	}
	return putUint32(v.mod.Memory(), p[4], cas)
}

func proxySetSharedData(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	key, ok1 := readString(mem, p[0], p[1])
	data, ok2 := read(mem, p[2], p[3])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	return v.g.shared.set(key, data, uint32(p[4]))
}

func proxyRegisterSharedQueue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	name, ok := readString(mem, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	token := v.g.queues.register(v.g.cfg.VMID, name, v, v.rootID)
	return putUint32(mem, p[2], token)
}

func proxyResolveSharedQueue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	vmID, ok1 := readString(mem, p[0], p[1])
	name, ok2 := readString(mem, p[2], p[3])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	token, found := v.g.queues.resolve(vmID, name)
	if !found {
		return statusNotFound
	}
	return putUint32(mem, p[4], token)
}

func proxyEnqueueSharedQueue(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	data, ok := read(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	return v.g.queues.enqueue(uint32(p[0]), data)
}

func proxyDequeueSharedQueue(ctx context.Context, v *vm, _ api.Memory, p []uint64) status {
	data, st := v.g.queues.dequeue(uint32(p[0]))
	if st != statusOK {
		return st
	}
	return v.give(ctx, data, p[1], p[2])
}

func proxyDefineMetric(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	kind := uint32(p[0])
	if kind > metricHistogram {
		return statusBadArgument
	}
	name, ok := readString(mem, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	m := v.g.metrics.define(name, kind)
	if m == nil {
		return statusBadArgument
	}
	v.nextMetric++
	v.metricIDs[v.nextMetric] = m
	return putUint32(mem, p[3], v.nextMetric)
}

func proxyIncrementMetric(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	m := v.metricIDs[uint32(p[0])]
	if m == nil {
		return statusNotFound
	}
	return v.g.metrics.increment(m, int64(p[1]))
}

func proxyRecordMetric(_ context.Context, v *vm, _ api.Memory, p []uint64) status {
	m := v.metricIDs[uint32(p[0])]
	if m == nil {
		return statusNotFound
	}
	return v.g.metrics.record(m, p[1])
}

func proxyGetMetric(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	m := v.metricIDs[uint32(p[0])]
	if m == nil {
		return statusNotFound
	}
	val, st := v.g.metrics.get(m)
	if st != statusOK {
		return st
	}
	if !mem.WriteUint64Le(uint32(p[1]), uint64(val)) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

//go:build wasip1

// Command probe is a minimal proxy-wasm plugin for the gateway's tests. It
// calls host functions the Knaight filter does not use, and one no host
// defines, and logs what it sees: the test reads the logs.
package main

import (
	"strconv"
	"unsafe"
)

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg *byte, size uint32) uint32

//go:wasmimport env proxy_made_up_function
func proxyMadeUp(x uint32) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(path *byte, pathSize uint32, ret unsafe.Pointer, retSize *uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxyGetCurrentTime(ret *uint64) uint32

//go:wasmimport env proxy_register_shared_queue
func proxyRegisterSharedQueue(name *byte, size uint32, ret *uint32) uint32

//go:wasmimport env proxy_enqueue_shared_queue
func proxyEnqueueSharedQueue(id uint32, data *byte, size uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriod(ms uint32) uint32

func logf(s string) { proxyLog(2, unsafe.StringData(s), uint32(len(s))) }

var (
	queueID   uint32
	inEnqueue bool
	ticks     int
)

//go:wasmexport proxy_on_memory_allocate
func allocate(size uint32) *byte {
	b := make([]byte, size)
	return &b[0]
}

//go:wasmexport proxy_on_context_create
func contextCreate(id, parent uint32) {}

//go:wasmexport proxy_on_vm_start
func vmStart(id, size uint32) bool { return true }

//go:wasmexport proxy_on_configure
func configure(id, size uint32) bool {
	logf("made_up=" + strconv.Itoa(int(proxyMadeUp(7))))
	logf("property=" + property("probe\x00answer"))
	logf("vm_id=" + property("plugin_vm_id"))
	logf("missing=" + property("no\x00such\x00thing"))
	var now uint64
	proxyGetCurrentTime(&now)
	logf("time=" + strconv.FormatUint(now, 10))
	name := "probe"
	proxyRegisterSharedQueue(unsafe.StringData(name), uint32(len(name)), &queueID)
	inEnqueue = true
	st := proxyEnqueueSharedQueue(queueID, unsafe.StringData(name), uint32(len(name)))
	inEnqueue = false
	logf("enqueue=" + strconv.Itoa(int(st)))
	proxySetTickPeriod(10)
	return true
}

//go:wasmexport proxy_on_queue_ready
func queueReady(id, queue uint32) {
	logf("queue_ready during_enqueue=" + strconv.FormatBool(inEnqueue))
}

//go:wasmexport proxy_on_tick
func tick(id uint32) {
	if ticks++; ticks == 1 {
		logf("tick")
		proxySetTickPeriod(0)
	}
}

func property(path string) string {
	var ret unsafe.Pointer
	var size uint32
	if st := proxyGetProperty(unsafe.StringData(path), uint32(len(path)), unsafe.Pointer(&ret), &size); st != 0 {
		return "status " + strconv.Itoa(int(st))
	}
	return unsafe.String((*byte)(ret), size)
}

func main() {}

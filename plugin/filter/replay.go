package filter

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// Replay protection must hold across every worker VM of the proxy, so seen
// signatures live in shared data. Proxy-wasm shared data cannot list or
// delete keys, so a key per signature would grow without bound; instead the
// signatures hash into replaySlots fixed keys, each holding the unexpired
// entries of its slot (16 bytes of the signature, 8 bytes of expiry in Unix
// milliseconds). Every write is a compare-and-swap on the slot, so two VMs
// accepting the same signature at the same moment cannot both succeed, and
// each write drops the slot's expired entries.
const (
	replaySlots    = 4096
	replayEntry    = 24
	replayAttempts = 16
	// replaySlotMax bounds one slot's entries. A full slot refuses new
	// signatures (fail closed) until entries expire: at 4096 slots that is
	// about 4,000 accepted requests per second sustained over a 10 minute
	// window before anything is refused.
	replaySlotMax = 1024
)

// errReplayUnavailable means the replay state could not be read or written;
// the request is denied.
var errReplayUnavailable = errors.New("replay state unavailable")

// replaySlotKey returns the shared-data key of sig's slot.
func (p *pluginContext) replaySlotKey(sig *[32]byte) string {
	return p.replayKeys[int(binary.BigEndian.Uint16(sig[:2]))%replaySlots]
}

// initReplaySlots creates the empty slots that do not exist yet, at plugin
// start, before any request. Envoy treats a compare-and-swap value of 0 as
// "no check", so a slot must exist before requests race to write it. It
// keeps the slots' keys, which requests would otherwise build each time.
func (p *pluginContext) initReplaySlots() error {
	p.replayKeys = make([]string, replaySlots)
	for i := range replaySlots {
		key := p.keys.replay + strconv.Itoa(i)
		p.replayKeys[i] = key
		if _, _, err := proxywasm.GetSharedData(key); errors.Is(err, types.ErrorStatusNotFound) {
			if err := proxywasm.SetSharedData(key, []byte{}, 0); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// seen records sig until expires and reports whether it was already
// recorded and unexpired at now. It fails closed: any error is returned and
// the caller denies.
func (p *pluginContext) seen(sig *[32]byte, expires, now time.Time) (bool, error) {
	key := p.replaySlotKey(sig)
	nowMs, expMs := uint64(now.UnixMilli()), uint64(expires.UnixMilli())
	for range replayAttempts {
		data, cas, err := proxywasm.GetSharedData(key)
		if err != nil {
			return false, errReplayUnavailable
		}
		// The host copies what it is given, so the slot's new value is
		// built in a buffer the plugin keeps for the next request.
		next := p.replayBuf[:0]
		for i := 0; i+replayEntry <= len(data); i += replayEntry {
			e := data[i : i+replayEntry]
			exp := binary.BigEndian.Uint64(e[16:])
			if exp <= nowMs {
				continue
			}
			if string(e[:16]) == string(sig[:16]) {
				return true, nil
			}
			next = append(next, e...)
		}
		if len(next) >= replaySlotMax*replayEntry {
			return false, errReplayUnavailable
		}
		next = append(next, sig[:16]...)
		next = binary.BigEndian.AppendUint64(next, expMs)
		p.replayBuf = next
		err = proxywasm.SetSharedData(key, next, cas)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return false, errReplayUnavailable
		}
	}
	return false, errReplayUnavailable
}

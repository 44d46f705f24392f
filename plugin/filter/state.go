package filter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/shared/snapshot"
	"github.com/knaight/knaight/shared/token"
)

// The poller publishes the verified snapshot in proxy-wasm shared data, which
// every VM of the same vm_id (every Envoy worker) reads:
//
//   - keySnapshot holds the snapshot's JSON, exactly as the manager signed
//     it (the poller verified it before writing);
//   - keyHead holds 16 bytes: the snapshot's version and the last time, in
//     Unix milliseconds, the poller heard from the manager (a new snapshot
//     or a 304 confirming the current one). Workers read only this small
//     key per request, and the large one once per new version.
//
// Keys are prefixed with the organization and environment, so two filter
// configurations in one vm_id do not mix.
type sharedKeys struct {
	snapshot, head, lease, replay string
	queue                         string
}

func newSharedKeys(c Config) sharedKeys {
	p := "knaight." + c.Organization + "." + string(c.Environment) + "."
	return sharedKeys{
		snapshot: p + "snapshot",
		head:     p + "snapshot.head",
		lease:    p + "poller.lease",
		replay:   p + "replay.",
		queue:    p + "decisions",
	}
}

// head is the decoded keyHead value.
type head struct {
	version   uint64
	confirmed time.Time
}

func encodeHead(h head) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, h.version)
	binary.BigEndian.PutUint64(b[8:], uint64(h.confirmed.UnixMilli()))
	return b
}

func decodeHead(b []byte) (head, bool) {
	if len(b) != 16 {
		return head{}, false
	}
	return head{
		version:   binary.BigEndian.Uint64(b),
		confirmed: time.UnixMilli(int64(binary.BigEndian.Uint64(b[8:]))),
	}, true
}

// view is one VM's decoded snapshot, indexed for the request path. It is
// built once per version and never changed, so requests share it, except
// for the cache of prepared agent keys.
type view struct {
	snap      *snapshot.Snapshot
	version   uint64
	agents    map[string]*snapshot.Agent
	keys      map[string]token.Key
	keysHash  string
	revoked   map[string]time.Time
	policies  *policy.Set
	skew      time.Duration
	staleness time.Duration
	// metadata is the RFC 9728 document, ready to send.
	metadata []byte
	// upstream is the upstream key, prepared for signing every allowed
	// request; agentKeys are the agents' keys prepared as requests use
	// them (see agentKey).
	upstream  *sign.Key
	agentKeys map[*snapshot.HMACKey]*sign.Key
}

// agentKeyCacheSize bounds the prepared agent keys a view keeps, about a
// kilobyte each.
const agentKeyCacheSize = 1024

// agentKey returns k prepared for verifying signatures (sign.NewKey saves
// two of the six SHA-256 blocks of each request's HMAC). Keys are prepared
// on first use, since a snapshot may list far more agents than call
// through one VM; past agentKeyCacheSize the cache starts over.
func (v *view) agentKey(k *snapshot.HMACKey) *sign.Key {
	if p, ok := v.agentKeys[k]; ok {
		return p
	}
	if len(v.agentKeys) >= agentKeyCacheSize {
		clear(v.agentKeys)
	}
	p := sign.NewKey(k.Secret)
	v.agentKeys[k] = p
	return p
}

// Key implements token.Keys.
func (v *view) Key(kid string) (token.Key, bool) {
	k, ok := v.keys[kid]
	return k, ok
}

// newView indexes a validated snapshot for the configuration c.
func newView(c *Config, s *snapshot.Snapshot) (*view, error) {
	set, err := policy.Compile(s.Bundle.Policies)
	if err != nil {
		return nil, err
	}
	v := &view{
		snap:      s,
		version:   s.Version,
		agents:    make(map[string]*snapshot.Agent, len(s.Agents)),
		keys:      make(map[string]token.Key, len(s.TokenKeys)),
		revoked:   make(map[string]time.Time, len(s.Revocations)),
		policies:  set,
		skew:      s.Settings.ClockSkew(),
		staleness: min(c.MaxStaleness, s.Settings.MaxStaleness()),
		upstream:  sign.NewKey(s.Upstream.Secret),
		agentKeys: make(map[*snapshot.HMACKey]*sign.Key),
	}
	for i := range s.Agents {
		v.agents[s.Agents[i].ANSName] = &s.Agents[i]
	}
	for _, k := range s.TokenKeys {
		tk := token.Key{ID: k.ID, Algorithm: token.Algorithm(k.Algorithm)}
		if k.Algorithm == snapshot.AlgEdDSA {
			tk.Public = k.Key
		} else {
			tk.Secret = k.Key
		}
		v.keys[k.ID] = tk
		v.keysHash += k.ID + "\x00" + k.Algorithm + "\x00" + string(k.Key) + "\x00"
	}
	for _, r := range s.Revocations {
		v.revoked[r.TokenID] = r.ExpiresAt
	}
	md := struct {
		Resource string `json:"resource"`
		snapshot.ProtectedResource
		BearerMethods []string `json:"bearer_methods_supported"`
	}{c.Resource, s.ProtectedResource, []string{"header"}}
	if v.metadata, err = json.Marshal(md); err != nil {
		return nil, err
	}
	return v, nil
}

// errNoSnapshot means no snapshot was ever published in shared data.
var errNoSnapshot = errors.New("no snapshot published yet")

// current returns the VM's view of the newest published snapshot and when
// the poller last heard from the manager. It reads the small head key on
// every call and decodes the snapshot only when its version is new to this
// VM. A published snapshot that does not decode keeps the previous view.
func (p *pluginContext) current() (*view, time.Time, error) {
	data, _, err := proxywasm.GetSharedData(p.keys.head)
	if errors.Is(err, types.ErrorStatusNotFound) {
		return nil, time.Time{}, errNoSnapshot
	} else if err != nil {
		return nil, time.Time{}, err
	}
	h, ok := decodeHead(data)
	if !ok {
		return nil, time.Time{}, errors.New("malformed snapshot head in shared data")
	}
	if p.view != nil && p.view.version >= h.version {
		return p.view, h.confirmed, nil
	}
	payload, _, err := proxywasm.GetSharedData(p.keys.snapshot)
	if err != nil {
		return p.view, h.confirmed, err
	}
	s, err := snapshot.Decode(payload)
	if err == nil && s.Version < h.version {
		// The poller writes the snapshot before the head, so this is a
		// head from a newer snapshot not yet visible; use what we have.
		err = errors.New("snapshot older than its head")
	}
	if err != nil {
		if p.view == nil {
			return nil, time.Time{}, err
		}
		return p.view, h.confirmed, nil
	}
	if s.Organization != p.config.Organization || s.Environment != p.config.Environment {
		return nil, time.Time{}, errors.New("published snapshot is for " + s.Organization + "/" + string(s.Environment))
	}
	v, err := newView(&p.config, s)
	if err != nil {
		return p.view, h.confirmed, err
	}
	if p.view != nil && p.view.keysHash != v.keysHash {
		p.tokens.clear() // a key left: tokens it verified must verify again
	}
	p.view = v
	return v, h.confirmed, nil
}

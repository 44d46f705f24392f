package mcp

import (
	"errors"
	"fmt"

	"github.com/knaight/knaight/shared/internal/jsonscan"
)

// Kind is the kind of a JSON-RPC message. The zero Kind is no kind: Classify
// returns it only with an error.
type Kind uint8

// The kinds of JSON-RPC 2.0 message.
const (
	// KindRequest has a method and an id; it expects a response.
	KindRequest Kind = iota + 1
	// KindNotification has a method and no id; nothing answers it.
	KindNotification
	// KindResponse has a result or an error, an id and no method. Clients
	// send them only on protocol versions before 2026-07-28, to answer a
	// server's request.
	KindResponse
)

// String returns "request", "notification" or "response".
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is what the filter needs to know of a JSON-RPC message. Strings
// are unescaped; a \u escape of an unpaired UTF-16 surrogate reads as
// U+FFFD, as encoding/json reads it.
type Message struct {
	Kind Kind
	// ID is the raw JSON of the id, a string (with its quotes and escapes)
	// or a number, exactly as sent, so that a response can echo it. It
	// aliases the body passed to Classify; it is nil for a notification.
	ID []byte
	// Method is the JSON-RPC method; empty for a response.
	Method string
	// Name is what policy restricts besides the method: params.name for
	// tools/call and prompts/get, params.uri for resources/read. It is
	// empty for other methods and when the member is absent.
	Name string
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"],
	// which every request carries from MCP 2026-07-28 on; empty when absent.
	ProtocolVersion string
}

// The methods whose params carry the name that policy restricts.
const (
	methodToolsCall     = "tools/call"
	methodPromptsGet    = "prompts/get"
	methodResourcesRead = "resources/read"
)

// metaProtocolVersion is the params._meta key of the protocol version.
const metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"

// MaxDepth is how deeply objects and arrays may nest in a body, counting the
// top-level object as 1. It keeps the scanner's recursion bounded; MCP
// messages nest a handful of levels, tool arguments a few more.
const MaxDepth = 64

// The members Classify reads at each level, for the check that no other key
// differs from one of them only in letter case.
var (
	topKeys    = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	paramsKeys = []string{"name", "uri", "_meta"}
	metaKeys   = []string{metaProtocolVersion}
)

// Classify reads one JSON-RPC 2.0 message from body and returns its kind,
// id, method and, for the methods that have one, the name that policy
// restricts. It scans body once, reads only the members it needs, and checks
// that the whole body is well-formed.
//
// When body has several problems, the error is the first of ErrParse
// (including ErrTooDeep), ErrBatch, ErrDuplicateKey and ErrInvalidRequest
// that applies. On error the Message is the zero Message.
//
// The returned ID aliases body: do not modify body while the Message is in
// use. Method and Name never alias it.
func Classify(body []byte) (Message, error) {
	c := classifier{s: jsonscan.Scanner{Data: body, MaxDepth: MaxDepth}}
	if err := c.scan(); err != nil {
		var e *jsonscan.Error
		if errors.As(err, &e) && errors.Is(e, jsonscan.ErrTooDeep) {
			return Message{}, fmt.Errorf("%w at offset %d", ErrTooDeep, e.Offset)
		}
		return Message{}, fmt.Errorf("%w: %v", ErrParse, err)
	}
	switch {
	case c.batch:
		return Message{}, ErrBatch
	case c.dup != nil:
		return Message{}, c.dup
	}
	m := c.message()
	if c.invalid != nil {
		return Message{}, c.invalid
	}
	return m, nil
}

// classifier scans a body and keeps the raw JSON of each member Classify
// reads (nil when absent). Members can come in any order (params before
// method), so they are judged only after the whole body was scanned.
type classifier struct {
	s       jsonscan.Scanner
	batch   bool
	dup     error // first duplicate key
	invalid error // first violation of the JSON-RPC or MCP message shape

	jsonrpc, id, method, params, result, rpcError []byte
	name, uri, version                            []byte
}

func (c *classifier) reject(reason string) {
	if c.invalid == nil {
		c.invalid = fmt.Errorf("%w: %s", ErrInvalidRequest, reason)
	}
}

// scan reads the body and returns its first syntax error.
func (c *classifier) scan() error {
	var err error
	switch c.s.Peek() {
	case jsonscan.Object:
		err = c.object(c.top)
	case jsonscan.Array:
		c.batch = true
		_, err = c.s.Skip()
	default:
		c.reject("not a JSON object")
		_, err = c.s.Skip()
	}
	if err != nil {
		return err
	}
	return c.s.End()
}

// object reads the object that is next, calling each for its members, and
// records the first key that repeats one before it.
func (c *classifier) object(each func(key []byte) error) error {
	var keys jsonscan.KeySet
	return c.s.Object(func(key []byte, at int) error {
		if keys.Add(key) && c.dup == nil {
			c.dup = fmt.Errorf("%w at offset %d", ErrDuplicateKey, at)
		}
		return each(key)
	})
}

func (c *classifier) top(key []byte) (err error) {
	switch string(key) {
	case "jsonrpc":
		c.jsonrpc, err = c.s.Skip()
	case "id":
		c.id, err = c.s.Skip()
	case "method":
		c.method, err = c.s.Skip()
	case "params":
		if c.s.Peek() != jsonscan.Object {
			c.params, err = c.s.Skip()
			break
		}
		start := c.s.Offset()
		err = c.object(c.param)
		c.params = c.s.Data[start:c.s.Offset()]
	case "result":
		c.result, err = c.s.Skip()
	case "error":
		c.rpcError, err = c.s.Skip()
	default:
		if _, ok := jsonscan.FoldMatch(key, topKeys); ok {
			c.reject("key differs from a JSON-RPC member only in case")
		}
		_, err = c.s.Skip()
	}
	return err
}

func (c *classifier) param(key []byte) (err error) {
	switch string(key) {
	case "name":
		c.name, err = c.s.Skip()
	case "uri":
		c.uri, err = c.s.Skip()
	case "_meta":
		if c.s.Peek() == jsonscan.Object {
			return c.object(c.meta)
		}
		_, err = c.s.Skip()
	default:
		if _, ok := jsonscan.FoldMatch(key, paramsKeys); ok {
			c.reject("params key differs from name, uri or _meta only in case")
		}
		_, err = c.s.Skip()
	}
	return err
}

func (c *classifier) meta(key []byte) (err error) {
	if string(key) == metaProtocolVersion {
		c.version, err = c.s.Skip()
		return err
	}
	if _, ok := jsonscan.FoldMatch(key, metaKeys); ok {
		c.reject("_meta key differs from " + metaProtocolVersion + " only in case")
	}
	_, err = c.s.Skip()
	return err
}

// message judges the scanned members and builds the Message; it records
// what is wrong in c.invalid.
func (c *classifier) message() Message {
	if v, ok := text(c.jsonrpc); !ok || string(v) != "2.0" {
		c.reject(`"jsonrpc" is not "2.0"`)
	}
	var m Message
	isResponse := c.result != nil || c.rpcError != nil
	switch {
	case c.method != nil && isResponse:
		c.reject("both method and result or error")
	case c.method != nil:
		m.Kind = KindNotification
		if c.id != nil {
			m.Kind = KindRequest
		}
		if p := first(c.params); p != 0 && p != '{' && p != '[' {
			c.reject("params is not an object or array")
		}
		method, ok := text(c.method)
		if !ok {
			c.reject("method is not a string")
			break
		}
		m.Method = intern(method)
		switch m.Method {
		case methodToolsCall, methodPromptsGet:
			m.Name = c.optional(c.name, "params.name")
		case methodResourcesRead:
			m.Name = c.optional(c.uri, "params.uri")
		}
		m.ProtocolVersion = c.optional(c.version, "params._meta protocol version")
	case isResponse:
		m.Kind = KindResponse
		switch {
		case c.result != nil && c.rpcError != nil:
			c.reject("both result and error")
		case c.rpcError != nil && first(c.rpcError) != '{':
			c.reject("error is not an object")
		case c.id == nil:
			c.reject("response without id")
		case c.params != nil:
			c.reject("response with params")
		}
	default:
		c.reject("no method")
	}
	if c.id != nil {
		switch first(c.id) {
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			m.ID = c.id
		case 'n':
			c.reject("id is null")
		default:
			c.reject("id is not a string or number")
		}
	}
	return m
}

// first returns the first byte of a member's raw JSON, which tells its
// type, or 0 when it is absent.
func first(raw []byte) byte {
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// text returns the contents of raw if it is a JSON string that the scan
// accepted.
func text(raw []byte) ([]byte, bool) {
	s := jsonscan.Scanner{Data: raw}
	k, v, _ := s.Value()
	return v, k == jsonscan.String
}

// optional returns the contents of raw, which must be a string if present.
func (c *classifier) optional(raw []byte, what string) string {
	if raw == nil {
		return ""
	}
	if v, ok := text(raw); ok {
		return intern(v)
	}
	c.reject(what + " is not a string")
	return ""
}

// intern returns b as a string, without allocating for the method names
// and protocol versions that most requests carry.
func intern(b []byte) string {
	switch string(b) {
	case "tools/call":
		return "tools/call"
	case "tools/list":
		return "tools/list"
	case "resources/read":
		return "resources/read"
	case "resources/list":
		return "resources/list"
	case "resources/templates/list":
		return "resources/templates/list"
	case "prompts/get":
		return "prompts/get"
	case "prompts/list":
		return "prompts/list"
	case "completion/complete":
		return "completion/complete"
	case "ping":
		return "ping"
	case "server/discover":
		return "server/discover"
	case "subscriptions/listen":
		return "subscriptions/listen"
	case "initialize":
		return "initialize"
	case "notifications/initialized":
		return "notifications/initialized"
	case "notifications/cancelled":
		return "notifications/cancelled"
	case Version20260728:
		return Version20260728
	}
	return string(b)
}

// Package envoyconfig checks the Envoy and Istio configurations under envoy/
// offline. No Envoy binary runs in CI, so this is what stands between a typo
// in those files and a proxy that refuses to start, or a filter that runs
// misconfigured: Envoy configuration is decoded with Envoy's own protos
// (go-control-plane) and validated down to the message inside every
// typed_config, and every Knaight plugin configuration found in it is
// parsed with the filter's own parser (plugin/filter.ParseConfig).
package envoyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"

	// The extensions the configurations use, imported for their
	// registration: an Any of a type not registered here cannot be decoded.
	// Add the package of any extension a configuration starts to use.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
)

// Decode decodes one YAML document (JSON is YAML too) into m the way Envoy
// reads its configuration: strictly, so an unknown field anywhere, inside
// a typed_config included, or an Any of an unregistered type is an error.
// It does not validate; see Validate.
func Decode(doc []byte, m proto.Message) error {
	js, err := yamlToJSON(doc)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return fmt.Errorf("decode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// yamlToJSON converts a stream holding exactly one YAML document to JSON.
func yamlToJSON(doc []byte) ([]byte, error) {
	docs, err := yamlDocuments(doc)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("want one YAML document, have %d", len(docs))
	}
	return json.Marshal(docs[0])
}

// yamlDocuments decodes every document of a YAML stream into plain Go
// values (maps with string keys, slices, scalars), ready for encoding/json.
// Repeated mapping keys are an error.
func yamlDocuments(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
}

// validator is what protoc-gen-validate generates for every message of
// go-control-plane and cncf/xds.
type validator interface {
	ValidateAll() error
}

// Validate checks m against its protos' validation rules, and does the same
// for the message packed in every google.protobuf.Any inside m, at any
// depth: the generated ValidateAll stops at an Any, which is where every
// typed_config lives. It also refuses deprecated fields, whose meaning
// Envoy has moved elsewhere (fail_open among them). Every problem found is
// reported, each with the path of the message at fault.
func Validate(m proto.Message) error {
	var errs []error
	err := walk(m, "", func(path string, msg proto.Message, packed bool) error {
		if path == "" || packed {
			if v, ok := msg.(validator); ok {
				if err := v.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", where(path), err))
				}
			} else if name := msg.ProtoReflect().Descriptor().FullName(); !strings.HasPrefix(string(name), "google.protobuf.") {
				errs = append(errs, fmt.Errorf("%s: %s has no validation rules linked in", where(path), name))
			}
		}
		msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
				errs = append(errs, fmt.Errorf("%s: field %s is deprecated", where(path), fd.Name()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

func where(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

// walk calls fn for m and every message set inside it, depth first. An Any
// is unpacked and fn sees the message inside (packed true), never the Any;
// an Any whose type is not registered stops the walk with an error.
func walk(m proto.Message, path string, fn func(path string, m proto.Message, packed bool) error) error {
	return visit(m, path, fn, false)
}

// edit is walk for a fn that changes the messages it is given: what fn
// changes inside an Any is packed into it again.
func edit(m proto.Message, fn func(path string, m proto.Message, packed bool) error) error {
	return visit(m, "", fn, true)
}

func visit(m proto.Message, path string, fn func(path string, m proto.Message, packed bool) error, repack bool) (err error) {
	packed := false
	if a, ok := m.(*anypb.Any); ok {
		inner, uerr := a.UnmarshalNew()
		if uerr != nil {
			return fmt.Errorf("%s: unpack %s: %w", where(path), a.GetTypeUrl(), uerr)
		}
		if repack {
			defer func() {
				if err == nil {
					a.Value, err = proto.MarshalOptions{Deterministic: true}.Marshal(inner)
				}
			}()
		}
		m, packed = inner, true
		path += "<" + string(inner.ProtoReflect().Descriptor().FullName()) + ">"
	}
	if err = fn(path, m, packed); err != nil {
		return err
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if path != "" {
			name = path + "." + name
		}
		switch {
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = visit(l.Get(i).Message().Interface(), fmt.Sprintf("%s[%d]", name, i), fn, repack)
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = visit(mv.Message().Interface(), fmt.Sprintf("%s[%v]", name, k.Interface()), fn, repack)
				return err == nil
			})
		case fd.Message() != nil:
			err = visit(v.Message().Interface(), name, fn, repack)
		}
		return err == nil
	})
	return err
}

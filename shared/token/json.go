package token

import (
	"fmt"

	"github.com/knaight/knaight/shared/internal/jsonscan"
)

// The header and the claims are read by jsonscan rather than unmarshalled.
// encoding/json keeps the last of repeated names and matches struct fields
// case-insensitively, so {"iss":"a","ISS":"b"} means "b" to the manager's
// golang-jwt and could mean "a" to another parser; reading names exactly and
// refusing names equal under case folding leaves one reading of every
// accepted token. (json.Decoder's Token API could do the same, but it costs
// about 300µs a token in WebAssembly, half an Ed25519 verification.)
//
// The scanner is strict: besides invalid UTF-8 and nesting deeper than
// maxDepth, it refuses \u escapes of unpaired UTF-16 surrogates (which
// encoding/json replaces with U+FFFD) and repeated names at any depth.

// maxDepth bounds nesting; gateway tokens nest two deep.
const maxDepth = 32

// member handles one member of an object, with s at its value, which
// member must read whole.
type member func(s *jsonscan.Scanner, name []byte) error

// decodeObject reads data, which must be exactly one JSON object, calling m
// for each of its members.
func decodeObject(data []byte, m member) error {
	s := &jsonscan.Scanner{Data: data, MaxDepth: maxDepth, Strict: true}
	if k := s.Peek(); k != jsonscan.Object {
		if _, err := s.Skip(); err != nil {
			return err
		}
		return fmt.Errorf("%s where an object belongs", k)
	}
	if err := s.Object(func(name []byte, _ int) error { return m(s, name) }); err != nil {
		return err
	}
	return s.End()
}

package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/knaight/knaight/shared/policy"
)

// maxDataJSON bounds the data document read from a stored bundle.
const maxDataJSON = 64 << 20

// Policies returns the compiled policies a bundle tarball carries as
// data.knaight.policies: exactly what its OPA sidecars enforce, and what the
// gateway snapshot carries for the bundle. It reads the tarball's data
// files without evaluating any of it.
func Policies(tarball []byte) ([]policy.Policy, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	tr := tar.NewReader(zr)
	var out []policy.Policy
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read bundle: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if path.Base(name) != "data.json" || h.Typeflag != tar.TypeReg {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(tr, maxDataJSON))
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", name, err)
		}
		var ps []policy.Policy
		switch path.Dir(name) {
		case ".":
			var doc struct {
				Knaight struct {
					Policies []policy.Policy `json:"policies"`
				} `json:"knaight"`
			}
			err = json.Unmarshal(raw, &doc)
			ps = doc.Knaight.Policies
		case Root:
			var doc struct {
				Policies []policy.Policy `json:"policies"`
			}
			err = json.Unmarshal(raw, &doc)
			ps = doc.Policies
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("decode bundle %s: %w", name, err)
		}
		found = true
		out = append(out, ps...)
	}
	if !found {
		return nil, errors.New("read bundle: no data.json")
	}
	if out == nil {
		out = []policy.Policy{}
	}
	return out, nil
}

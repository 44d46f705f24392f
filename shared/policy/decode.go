package policy

import (
	"bytes"
	"encoding/json"
)

// Decoding is hand-rolled on top of encoding/json because its defaults are
// wrong for a security policy: it ignores unknown keys (a misspelt or
// misplaced constraint would be dropped and the policy would allow more),
// matches keys case-insensitively and lets a repeated key silently override
// the first (so other parsers, such as OPA's, could read a different policy),
// and stops at the first type error without saying where it was.

// UnmarshalJSON decodes strictly: unknown, repeated or differently-cased keys
// and values of the wrong JSON type are errors, reported together as a
// *ValidationError with field paths. Fields that decoded are stored even when
// others did not, but the result must not be used unless the error is nil and
// Validate passes; ParsePolicy does both. JSON null leaves p unchanged, and a
// null field is treated as absent.
func (p *Policy) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var d decoder
	var v Policy
	d.policy(b, &v)
	*p = v
	return d.err()
}

// UnmarshalJSON decodes strictly, as Policy.UnmarshalJSON does; field paths
// in the error are relative to the constraints object.
func (c *Constraints) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var d decoder
	var v Constraints
	d.constraints("", b, &v)
	*c = v
	return d.err()
}

// UnmarshalJSON decodes strictly, as Policy.UnmarshalJSON does; field paths
// in the error are relative to the window.
func (w *TimeWindow) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var d decoder
	var v TimeWindow
	d.timeWindow("", b, &v)
	*w = v
	return d.err()
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

type decoder struct{ errs []FieldError }

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: d.errs}
}

// fail records a problem with the raw JSON value at path as its Value.
func (d *decoder) fail(path, msg string, raw []byte) {
	var v any
	if raw != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // keep numbers exactly as written
		if dec.Decode(&v) != nil {
			v = nil
		}
	}
	addErr(&d.errs, path, msg, v)
}

type member struct {
	key string
	raw json.RawMessage
}

// object returns the members of a JSON object in document order, recording
// repeated keys; ok is false if raw is not an object.
func (d *decoder) object(path string, raw []byte) (members []member, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		d.fail(path, "must be a JSON object", raw)
		return nil, false
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		if err != nil || !isKey {
			d.fail(path, "must be a JSON object", nil)
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			d.fail(path, "must be a JSON object", nil)
			return nil, false
		}
		if seen[key] {
			d.fail(joinPath(path, key), "key appears more than once", v)
			continue
		}
		seen[key] = true
		members = append(members, member{key, v})
	}
	return members, true
}

func (d *decoder) unknown(path string, raw []byte) {
	d.fail(path, "unknown field (names are case-sensitive)", raw)
}

func (d *decoder) str(path string, raw []byte, dst *string) {
	if isNull(raw) {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		d.fail(path, "must be a string", raw)
	}
}

// strings decodes an array of strings, keeping a placeholder for a bad
// element so that later indices still match the document.
func (d *decoder) strings(path string, raw []byte, dst *[]string) {
	if isNull(raw) {
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		d.fail(path, "must be an array of strings", raw)
		return
	}
	if len(elems) == 0 {
		return
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if isNull(e) || json.Unmarshal(e, &out[i]) != nil {
			d.fail(indexPath(path, i), "must be a string", e)
		}
	}
	*dst = out
}

func (d *decoder) policy(raw []byte, p *Policy) {
	members, ok := d.object("", raw)
	if !ok {
		return
	}
	for _, m := range members {
		path, raw := m.key, m.raw
		switch m.key {
		case "id":
			d.str(path, raw, &p.ID)
		case "roleTemplate":
			d.str(path, raw, &p.RoleTemplate)
		case "environment":
			var s string
			d.str(path, raw, &s)
			p.Environment = Environment(s)
		case "minTrustLevel":
			if !isNull(raw) && json.Unmarshal(raw, &p.MinTrustLevel) != nil {
				d.fail(path, `must be one of "L1", "L2", "L3", "L4", "L5"`, raw)
			}
		case "minLoa":
			var n uint8
			if !isNull(raw) && json.Unmarshal(raw, &n) != nil {
				d.fail(path, "must be an integer from 1 (self-asserted) to 4 (very high)", raw)
			}
			p.MinLoA = LoA(n)
		case "requiredScopes":
			d.strings(path, raw, &p.RequiredScopes)
		case "allowedEndpoints":
			d.strings(path, raw, &p.AllowedEndpoints)
		case "constraints":
			if !isNull(raw) {
				d.constraints(path, raw, &p.Constraints)
			}
		default:
			d.unknown(path, raw)
		}
	}
}

func (d *decoder) constraints(prefix string, raw []byte, c *Constraints) {
	members, ok := d.object(prefix, raw)
	if !ok {
		return
	}
	for _, m := range members {
		path, raw := joinPath(prefix, m.key), m.raw
		switch m.key {
		case "maxBodyBytes":
			if !isNull(raw) && json.Unmarshal(raw, &c.MaxBodyBytes) != nil {
				d.fail(path, "must be an integer number of bytes", raw)
			}
		case "timeWindows":
			if isNull(raw) {
				continue
			}
			var elems []json.RawMessage
			if err := json.Unmarshal(raw, &elems); err != nil {
				d.fail(path, "must be an array of time windows", raw)
				continue
			}
			if len(elems) == 0 {
				continue
			}
			c.TimeWindows = make([]TimeWindow, len(elems))
			for i, e := range elems {
				d.timeWindow(indexPath(path, i), e, &c.TimeWindows[i])
			}
		default:
			d.unknown(path, raw)
		}
	}
}

func (d *decoder) timeWindow(prefix string, raw []byte, w *TimeWindow) {
	members, ok := d.object(prefix, raw)
	if !ok {
		return
	}
	for _, m := range members {
		path, raw := joinPath(prefix, m.key), m.raw
		switch m.key {
		case "days":
			d.strings(path, raw, &w.Days)
		case "start":
			d.str(path, raw, &w.Start)
		case "end":
			d.str(path, raw, &w.End)
		default:
			d.unknown(path, raw)
		}
	}
}

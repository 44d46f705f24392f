package api

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/knaight/knaight/manager/internal/trust"
	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/policy"
)

// trustLevelSchema documents policy.TrustLevel as the string it encodes to;
// its Go type is a number.
type trustLevelSchema string

func (trustLevelSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Enum: []any{"L1", "L2", "L3", "L4", "L5"}, Description: "Trust level, L1 (least) to L5 (most)."}
}

// uuidSchema makes every uuid.UUID a string of format uuid, so a malformed
// id is refused by schema validation with its field named, before decoding.
type uuidSchema string

func (uuidSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Format: "uuid"}
}

// thresholdsSchema documents trust.Thresholds, whose JSON form is keyed by
// level names.
type thresholdsSchema thresholdsBody

// schemaNamer is huma's namer, with the shared decision contract's types
// prefixed (decision.Record would clash with tokens.Record).
func schemaNamer(t reflect.Type, hint string) string {
	name := huma.DefaultSchemaNamer(t, hint)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.PkgPath() == reflect.TypeFor[decision.Record]().PkgPath() {
		return "Decision" + name
	}
	return name
}

// registerSchemas makes the OpenAPI document describe the shared model's
// custom JSON encodings as they appear on the wire.
func registerSchemas(r huma.Registry) {
	r.RegisterTypeAlias(reflect.TypeFor[policy.TrustLevel](), reflect.TypeFor[trustLevelSchema]())
	r.RegisterTypeAlias(reflect.TypeFor[uuid.UUID](), reflect.TypeFor[uuidSchema]())
	r.RegisterTypeAlias(reflect.TypeFor[trust.Thresholds](), reflect.TypeFor[thresholdsSchema]())
}

package calls

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/strictjson"
	"github.com/knaight/knaight/shared/decision"
)

// ErrMalformed means a batch body is not JSON at all.
var ErrMalformed = errors.New("malformed JSON")

// Decode reads a batch body (decision.Batch) as strictly as the API's
// schema validation reads every other body: no unknown or misspelt field
// at any level, every value of its field's type, nothing after the
// object; the semantics are Validate's. It exists for volume: the generic
// validation decodes a body twice, once into maps to validate and once
// into its type, and for batches of hundreds of records that was half of
// the manager's time per batch. Field errors are at "records" or
// "records[i]" (with ".<field>" when the decoder names it).
func Decode(body []byte) ([]decision.Record, error) {
	// A good batch is read in one pass; only a bad one is read again,
	// record by record, to say which record is at fault.
	var whole decision.Batch
	if err := strictjson.Decode(body, &whole); err == nil && whole.Records != nil && len(whole.Records) <= decision.MaxBatch {
		return whole.Records, nil
	}
	var batch struct {
		Records []json.RawMessage `json:"records"`
	}
	if err := strictjson.Decode(body, &batch); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if field, msg, ok := typeError(err); ok {
			return nil, fault.Field(field, msg, nil)
		}
		return nil, fault.Field("", err.Error(), nil)
	}
	switch {
	case batch.Records == nil:
		return nil, fault.Field("records", "required: the batch's records, an array", nil)
	case len(batch.Records) > decision.MaxBatch:
		return nil, fault.Field("records", fmt.Sprintf("at most %d records per batch", decision.MaxBatch), len(batch.Records))
	}
	recs := make([]decision.Record, len(batch.Records))
	inv := &fault.Invalid{}
	for i, raw := range batch.Records {
		if err := strictjson.Decode(raw, &recs[i]); err != nil {
			field, msg := "records["+strconv.Itoa(i)+"]", err.Error()
			if f, m, ok := typeError(err); ok {
				field, msg = field+"."+f, m
			}
			inv.Add(field, msg, nil)
		}
	}
	return recs, inv.Err()
}

// typeError says which field of a value had the wrong JSON type, and
// what was wanted, in JSON's terms rather than Go's.
func typeError(err error) (field, msg string, ok bool) {
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Field == "" {
		return "", "", false
	}
	want := "a string"
	switch t := typ.Type; {
	case t == reflect.TypeFor[time.Time]():
		want = "an RFC 3339 time"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		want = "a number"
	case t.Kind() == reflect.Slice:
		want = "an array"
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		want = "an object"
	}
	return typ.Field, fmt.Sprintf("must be %s, not a JSON %s", want, typ.Value), true
}

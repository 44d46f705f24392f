package policy

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidPolicy is wrapped by every error from Validate, ParsePolicy and
// Policy.UnmarshalJSON. The caller must reject the policy as a whole (HTTP
// 400/422 in the manager, refuse the bundle in the filter) and never store or
// evaluate it: a partly applied policy is not deny-by-default any more.
// errors.As with *ValidationError gives the per-field details.
var ErrInvalidPolicy = errors.New("invalid policy")

// FieldError is one problem with one field, shaped so that an HTTP API can
// turn each into one problem+json "errors" entry without rewording.
type FieldError struct {
	// Field is the JSON path of the field relative to the policy document,
	// such as "allowedEndpoints[2]" or "constraints.timeWindows[0].start".
	// It is "" when the document itself is wrong (not a JSON object).
	Field string `json:"field"`
	// Message says what is wrong and what is accepted, for a human.
	Message string `json:"message"`
	// Value is the rejected value as given (nil when the field is missing).
	// It is not truncated; bound its size before echoing it back.
	Value any `json:"value,omitempty"`
}

// ValidationError lists every problem found in a policy, not just the first,
// so that an author can fix them all in one round trip. Errors is never empty.
// From ParsePolicy, decoding problems (in document order) come first, then
// validation problems (in field order) of the fields that did decode.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// maxErrorsInMessage keeps Error() readable in logs; Errors has them all.
const maxErrorsInMessage = 10

// Error lists the fields and messages, the first few of them only.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidPolicy.Error())
	for i, fe := range e.Errors {
		if i == maxErrorsInMessage {
			b.WriteString("; and ")
			b.WriteString(strconv.Itoa(len(e.Errors) - i))
			b.WriteString(" more")
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if fe.Field == "" {
			b.WriteString("(document)")
		} else {
			b.WriteString(fe.Field)
		}
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalidPolicy }

func addErr(errs *[]FieldError, field, msg string, value any) {
	*errs = append(*errs, FieldError{Field: field, Message: msg, Value: value})
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func indexPath(prefix string, i int) string {
	return prefix + "[" + strconv.Itoa(i) + "]"
}

// under reports whether path is field itself or inside it.
func under(path, field string) bool {
	if !strings.HasPrefix(path, field) {
		return false
	}
	rest := path[len(field):]
	return rest == "" || field == "" || rest[0] == '.' || rest[0] == '['
}

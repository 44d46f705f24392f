// Package fault holds the error kinds that every manager service returns and
// the HTTP layer maps in one place: not found, conflict, forbidden, and
// field-level validation failures. Services wrap the sentinels with context
// (fmt.Errorf("agent %s: %w", id, fault.ErrNotFound)).
package fault

import (
	"errors"
	"strings"
)

// ErrNotFound means the object does not exist in the caller's organization.
// Callers answer 404 and must not reveal whether another organization has it.
var ErrNotFound = errors.New("not found")

// ErrConflict means the request is valid but clashes with the current state
// (a duplicate name, a forbidden status transition). Callers answer 409.
var ErrConflict = errors.New("conflict")

// ErrForbidden means the caller is authenticated but its role may not do
// this. Callers answer 403.
var ErrForbidden = errors.New("forbidden")

// ErrUnauthenticated means the request carries no valid credential. Callers
// answer 401 without saying which part was wrong.
var ErrUnauthenticated = errors.New("unauthenticated")

// FieldError is one invalid field of a request body. Field is a JSON path
// relative to the body ("allowedEndpoints[2]", "constraints.maxBodyBytes").
type FieldError struct {
	Field   string
	Message string
	Value   any
}

// Invalid is a validation failure listing every invalid field. Callers
// answer 422 with one problem detail per field.
type Invalid struct {
	Errors []FieldError
}

func (e *Invalid) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Add records a field error.
func (e *Invalid) Add(field, message string, value any) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: message, Value: value})
}

// Err returns e if it holds any error, else nil.
func (e *Invalid) Err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return e
}

// Field returns an *Invalid with a single field error.
func Field(field, message string, value any) error {
	return &Invalid{Errors: []FieldError{{Field: field, Message: message, Value: value}}}
}

// AsInvalid returns the validation failure inside err, if any.
func AsInvalid(err error) (*Invalid, bool) {
	var inv *Invalid
	ok := errors.As(err, &inv)
	return inv, ok
}

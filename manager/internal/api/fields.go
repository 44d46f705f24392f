package api

import "github.com/knaight/knaight/manager/internal/fault"

// prefixFields nests a service's field errors under a body path, for
// request bodies that wrap the service's input in an object.
func prefixFields(err error, prefix string) error {
	inv, ok := fault.AsInvalid(err)
	if !ok {
		return err
	}
	out := &fault.Invalid{Errors: make([]fault.FieldError, len(inv.Errors))}
	for i, f := range inv.Errors {
		f.Field = prefix + f.Field
		out.Errors[i] = f
	}
	return out
}

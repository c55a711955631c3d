// Package fieldseal holds the domain types shared by every layer: records,
// their ids, client data keys and the small set of error codes that the HTTP
// layer maps to status codes in exactly one place (handlers/errors.go).
//
// Imports flow one way: cmd/fieldseal wires db, auth and handlers together;
// handlers and db import this package; this package imports none of them.
package fieldseal

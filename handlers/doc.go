// Package handlers is fieldseal's HTTP API on echo: the routes (all listed
// in routes.go), request and response types, middleware, and the one error
// handler (errors.go) that maps fieldseal error codes to status codes and
// application/problem+json bodies.
//
// The path of a request: middleware verifies the bearer token into Claims
// and checks the route's scope; the handler reads the Encryption-Key header
// and the body; one call into the RecordService runs one subject-scoped
// transaction; the handler writes the response.
//
// Keys, tokens and decrypted values never reach a log line or an error
// message: the request log names the route, status and latency only, and
// 5xx responses carry no internal detail (the log line with the same
// request id does).
package handlers

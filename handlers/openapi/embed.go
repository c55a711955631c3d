// Package openapi holds fieldseal's OpenAPI 3.1 document, served at
// /openapi.json. It is written by hand; the handlers' tests validate every
// request and response they make against it, so it cannot drift from the
// code unnoticed.
package openapi

import _ "embed"

// Document is the OpenAPI 3.1 document, JSON.
//
//go:embed openapi.json
var Document []byte

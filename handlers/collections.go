package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Collections serves /v1/collections/{collection}: which fields of a
// collection's secrets are searchable.
type Collections struct {
	service fieldseal.CollectionService
}

// collectionRequest is the body of PUT.
type collectionRequest struct {
	Searchable map[string]json.RawMessage `json:"searchable"`
}

// collectionAnswer is the answer to PUT.
type collectionAnswer struct {
	Collection string                               `json:"collection"`
	Searchable map[string]fieldseal.SearchableField `json:"searchable"`
	Indexed    int64                                `json:"indexed"`
	// Warnings name the searchable fields whose tags give their values
	// away to frequency analysis (fieldseal.FieldTags.Revealing).
	Warnings []string `json:"warnings"`
}

func (h *Collections) put(c echo.Context) error {
	name, err := collectionParam(c)
	if err != nil {
		return err
	}
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	var req collectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Searchable == nil {
		return fieldseal.Errorf(fieldseal.EINVALID, `searchable is required: an object of field names, as in {"searchable":{"email":{"case_insensitive":true}}}; {} makes no field searchable`)
	}
	if len(req.Searchable) > fieldseal.MaxSearchableFields {
		return fieldseal.Errorf(fieldseal.EINVALID, "at most %d searchable fields per collection", fieldseal.MaxSearchableFields)
	}
	settings := fieldseal.Collection{Collection: name, Searchable: make(map[string]fieldseal.SearchableField, len(req.Searchable))}
	for field, raw := range req.Searchable {
		if err := checkName("a searchable field name", field, fieldseal.MaxFieldNameLength); err != nil {
			return err
		}
		var opts fieldseal.SearchableField
		if err := decodeStrict(raw, &opts); err != nil {
			return fieldseal.Errorf(fieldseal.EINVALID, `searchable.%s must be an object whose only option is "case_insensitive" (true or false)`, field)
		}
		settings.Searchable[field] = opts
	}
	res, err := h.service.SetCollection(c.Request().Context(), caller(c), key, settings)
	if err != nil {
		return err
	}
	answer := collectionAnswer{Collection: name, Searchable: settings.Searchable, Indexed: res.Records, Warnings: []string{}}
	for _, f := range res.Fields {
		if f.Revealing() {
			answer.Warnings = append(answer.Warnings, fmt.Sprintf("secret.%s: %d records hold %d distinct values, the most common held by %d (%.0f %%): "+
				"whoever reads the search tags can count the records that share each value and match the counts to known frequencies, "+
				"which recovers values from few or skewed sets (docs/security.md, \"What a blind index reveals\")",
				f.Field, f.Tagged, f.Distinct, f.MostCommon, 100*float64(f.MostCommon)/float64(f.Tagged)))
		}
	}
	return writeJSON(c, http.StatusOK, answer)
}

func (h *Collections) get(c echo.Context) error {
	name, err := collectionParam(c)
	if err != nil {
		return err
	}
	settings, err := h.service.GetCollection(c.Request().Context(), caller(c), name)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, settings)
}

// collectionParam is the path's collection name, percent-decoded. echo
// routes on the raw path, and hands over its segments undecoded, only
// when the path holds an escape its decoded form would lose (%2F); else
// the segment is decoded already.
func collectionParam(c echo.Context) (string, error) {
	name := c.Param("collection")
	if c.Request().URL.RawPath != "" {
		var err error
		if name, err = url.PathUnescape(name); err != nil {
			return "", fieldseal.Errorf(fieldseal.EINVALID, "the collection in the path is not validly percent-encoded")
		}
	}
	if err := checkText("collection", name); err != nil {
		return "", err
	}
	return name, checkCollection(name)
}

package fieldseal

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ArchiveFormat names the format of `fieldseal audit archive` files.
const ArchiveFormat = "fieldseal audit archive v1"

// ArchiveHeader is the first line of an archive: which database, which
// cut, and for each chain the entries the file holds (first to last) and
// the hash before the first.
type ArchiveHeader struct {
	Format    string         `json:"format"`
	Database  string         `json:"database"`
	Before    string         `json:"before"`     // RFC 3339: entries older than this left
	CreatedAt string         `json:"created_at"` // RFC 3339, the database's clock
	Chains    []ArchiveChain `json:"chains"`
}

// ArchiveChain is one chain's span in an archive.
type ArchiveChain struct {
	Subject  string `json:"subject"`
	Lane     int16  `json:"lane"`
	FirstSeq int64  `json:"first_seq"`
	PrevHash string `json:"prev_hash"` // hex: the hash of entry first_seq-1 (zeros for entry 1)
	LastSeq  int64  `json:"last_seq"`
	LastHash string `json:"last_hash"` // hex
}

// ArchivedEntry is one line after the header: an entry with its hashes.
type ArchivedEntry struct {
	AuditEvent
	PrevHash string `json:"prev_hash"` // hex
	Hash     string `json:"hash"`      // hex
}

// AuditEntryHash is fieldseal.audit_entry_hash (migration 00018; 00007's
// audit_hash hashed the same bytes): SHA-256 of the previous entry's hash
// and the entry's fields joined by the unit separator.
func AuditEntryHash(prev []byte, e AuditEvent) []byte {
	recordID, count := "", ""
	if e.RecordID != nil {
		recordID = e.RecordID.String()
	}
	if e.RecordCount != nil {
		count = strconv.FormatInt(*e.RecordCount, 10)
	}
	fields := []string{e.Subject, strconv.FormatInt(e.Seq, 10), strconv.FormatInt(e.At.UnixMicro(), 10),
		e.Action, e.Outcome, recordID, count, e.TokenJTI, e.ClientID, e.RequestID, e.ClientAddr}
	h := sha256.New()
	h.Write(prev)
	h.Write([]byte(strings.Join(fields, "\x1f")))
	return h.Sum(nil)
}

// VerifyArchive reads an archive and checks it with no database: every
// chain the header names is there, in order, from its first entry to its
// last, each entry's hash recomputed and linked to the one before; no line
// is edited, dropped, inserted or moved. fn, if not nil, sees each entry.
// A file that is not an archive is an error; a broken one returns its
// breaks (the first of each chain).
func VerifyArchive(r io.Reader, fn func(ArchivedEntry)) (ArchiveHeader, []AuditBreak, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var h ArchiveHeader
	if !sc.Scan() {
		return h, nil, errors.New("empty: not an audit archive")
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != ArchiveFormat {
		return h, nil, errors.New("not an audit archive written by fieldseal audit archive")
	}
	var breaks []AuditBreak
	chains := h.Chains
	cur := -1 // index in chains of the chain being read
	var w ChainWalk
	fail := func(seq int64, problem string) {
		breaks = append(breaks, AuditBreak{Subject: w.Subject, Lane: w.Lane, Seq: seq, Problem: problem})
	}
	finish := func() {
		if cur < 0 || cur >= len(chains) {
			return
		}
		c := chains[cur]
		last, _ := hex.DecodeString(c.LastHash)
		if !w.Broken && !w.EndsAt(c.LastSeq, last) {
			fail(w.Next, fmt.Sprintf("the archive's entries of this chain end at %d, not at %d as its header says: lines were dropped", w.Next-1, c.LastSeq))
		}
	}
	line := 1
	for sc.Scan() {
		line++
		var e ArchivedEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return h, breaks, fmt.Errorf("line %d is not an archived entry", line)
		}
		if fn != nil {
			fn(e)
		}
		if cur < 0 || cur >= len(chains) || e.Subject != chains[cur].Subject || e.Lane != chains[cur].Lane {
			finish()
			cur++
			for cur < len(chains) && (chains[cur].Subject != e.Subject || chains[cur].Lane != e.Lane) {
				// A chain of the header with no line here: all dropped.
				breaks = append(breaks, AuditBreak{Subject: chains[cur].Subject, Lane: chains[cur].Lane, Seq: chains[cur].FirstSeq,
					Problem: "the header names this chain but the archive holds none of its entries, or holds them out of order"})
				cur++
			}
			if cur >= len(chains) {
				return h, append(breaks, AuditBreak{Subject: e.Subject, Lane: e.Lane, Seq: e.Seq,
					Problem: fmt.Sprintf("line %d belongs to no chain the header names, or is out of order", line)}), nil
			}
			prev, err := hex.DecodeString(chains[cur].PrevHash)
			if err != nil {
				return h, nil, errors.New("the header's hashes are not hex")
			}
			w = StartChain(e.Subject, e.Lane, chains[cur].FirstSeq, prev)
		}
		if w.Broken {
			continue
		}
		stored, err1 := hex.DecodeString(e.Hash)
		storedPrev, err2 := hex.DecodeString(e.PrevHash)
		if err1 != nil || err2 != nil {
			fail(e.Seq, fmt.Sprintf("line %d: its hashes are not hex", line))
			w.Broken = true
			continue
		}
		want := w.Next
		switch w.Step(e.AuditEvent, storedPrev, stored) {
		case LinkSeq:
			fail(want, fmt.Sprintf("line %d is entry %d where entry %d belongs: lines were dropped, inserted or moved", line, e.Seq, want))
		case LinkPrev:
			fail(e.Seq, fmt.Sprintf("line %d: its prev_hash is not the previous entry's hash", line))
		case LinkHash:
			fail(e.Seq, fmt.Sprintf("line %d: its contents do not match its hash: edited", line))
		}
	}
	if err := sc.Err(); err != nil {
		return h, breaks, err
	}
	finish()
	for cur++; cur < len(chains); cur++ {
		breaks = append(breaks, AuditBreak{Subject: chains[cur].Subject, Lane: chains[cur].Lane, Seq: chains[cur].FirstSeq,
			Problem: "the header names this chain but the archive holds none of its entries"})
	}
	return h, breaks, nil
}

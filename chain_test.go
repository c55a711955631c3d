package fieldseal_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
)

// chainOf makes n linked entries of alice's lane 0 from entry 1.
func chainOf(n int) (events []fieldseal.AuditEvent, prevs, hashes [][]byte) {
	prev := make([]byte, 32)
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := fieldseal.AuditEvent{Subject: "alice", Seq: int64(i), At: at.Add(time.Duration(i) * time.Second), Action: "record.read", Outcome: "ok"}
		h := fieldseal.AuditEntryHash(prev, e)
		events, prevs, hashes = append(events, e), append(prevs, prev), append(hashes, h)
		prev = h
	}
	return events, prevs, hashes
}

// The walk finds each kind of tampering at the entry where it is, once per
// chain, and a whole chain ends where its head says.
func TestChainWalk(t *testing.T) {
	events, prevs, hashes := chainOf(5)
	walk := func(edit func(i int, e *fieldseal.AuditEvent, prev, hash *[]byte) bool) (problems []fieldseal.LinkProblem, at []int64, w fieldseal.ChainWalk) {
		w = fieldseal.StartChain("alice", 0, 1, nil)
		for i := range events {
			e, p, h := events[i], prevs[i], hashes[i]
			if !edit(i, &e, &p, &h) {
				continue // dropped
			}
			if got := w.Step(e, p, h); got != fieldseal.LinkOK {
				problems, at = append(problems, got), append(at, e.Seq)
			}
		}
		return problems, at, w
	}
	cases := []struct {
		name string
		edit func(i int, e *fieldseal.AuditEvent, prev, hash *[]byte) bool
		want fieldseal.LinkProblem
		at   int64
	}{
		{"whole", func(int, *fieldseal.AuditEvent, *[]byte, *[]byte) bool { return true }, fieldseal.LinkOK, 0},
		{"an entry edited", func(i int, e *fieldseal.AuditEvent, _, _ *[]byte) bool {
			if i == 2 {
				e.Outcome = "refused"
			}
			return true
		}, fieldseal.LinkHash, 3},
		{"an entry dropped", func(i int, _ *fieldseal.AuditEvent, _, _ *[]byte) bool { return i != 1 }, fieldseal.LinkSeq, 3},
		{"an entry relinked", func(i int, _ *fieldseal.AuditEvent, prev, _ *[]byte) bool {
			if i == 3 {
				*prev = make([]byte, 32)
			}
			return true
		}, fieldseal.LinkPrev, 4},
	}
	for _, c := range cases {
		problems, at, w := walk(c.edit)
		switch {
		case c.want == fieldseal.LinkOK && (len(problems) != 0 || !w.EndsAt(5, hashes[4])):
			t.Errorf("%s: problems %v, ends at 5: %v; want none, and the chain whole", c.name, problems, w.EndsAt(5, hashes[4]))
		case c.want != fieldseal.LinkOK && (len(problems) != 1 || problems[0] != c.want || at[0] != c.at || !w.Broken):
			t.Errorf("%s: problems %v at %v; want exactly one, %v at entry %d", c.name, problems, at, c.want, c.at)
		}
	}
	// A chain cut short is whole as far as it goes but ends early.
	w := fieldseal.StartChain("alice", 0, 1, nil)
	for i := range 4 {
		w.Step(events[i], prevs[i], hashes[i])
	}
	if w.Broken || w.EndsAt(5, hashes[4]) {
		t.Errorf("a chain missing its last entry: broken %v, ends at 5 %v; want unbroken, ending early", w.Broken, w.EndsAt(5, hashes[4]))
	}
	// A chain archived up to entry 3 starts from entry 3's link.
	w = fieldseal.StartChain("alice", 0, 3, hashes[1])
	for i := 2; i < 5; i++ {
		if p := w.Step(events[i], prevs[i], hashes[i]); p != fieldseal.LinkOK {
			t.Errorf("entry %d after an archive: %v", i+1, p)
		}
	}
}

// Archives join chain by chain: a gap, an overlap, a file not given and an
// archive the database has no record of are each named.
func TestJoinArchives(t *testing.T) {
	_, _, hashes := chainOf(9)
	hx := func(seq int64) string {
		if seq == 0 {
			return hex.EncodeToString(make([]byte, 32))
		}
		return hex.EncodeToString(hashes[seq-1])
	}
	span := func(file string, first, last int64) fieldseal.ArchiveSpan {
		return fieldseal.ArchiveSpan{File: file, ArchiveChain: fieldseal.ArchiveChain{Subject: "alice", FirstSeq: first, PrevHash: hx(first - 1), LastSeq: last, LastHash: hx(last)}}
	}
	start := func(first int64) []fieldseal.ArchiveChain { // the database's chain now starts at first
		return []fieldseal.ArchiveChain{{Subject: "alice", FirstSeq: first, PrevHash: hx(first - 1)}}
	}
	cases := []struct {
		name   string
		spans  []fieldseal.ArchiveSpan
		starts []fieldseal.ArchiveChain
		want   string // in the one break's problem; "" for none
	}{
		{"two archives and the database, joined", []fieldseal.ArchiveSpan{span("b", 4, 6), span("a", 1, 3)}, start(7), ""},
		{"a gap between archives", []fieldseal.ArchiveSpan{span("a", 1, 3), span("b", 5, 6)}, start(7), "archive b (entries 5 to 6) does not join archive a"},
		{"an overlap", []fieldseal.ArchiveSpan{span("a", 1, 4), span("b", 4, 6)}, start(7), "does not join"},
		{"a later archive not given", []fieldseal.ArchiveSpan{span("a", 1, 3)}, start(7), "entries 4 to 6 were archived to a file not given"},
		{"the database's chain starts before the archive's end", []fieldseal.ArchiveSpan{span("a", 1, 6)}, start(5), "does not follow archive a's last entry 6"},
		{"no record of the archive in the database", []fieldseal.ArchiveSpan{span("a", 1, 3)}, nil, "the database records no archive of this chain"},
	}
	for _, c := range cases {
		breaks := fieldseal.JoinArchives(c.spans, c.starts)
		switch {
		case c.want == "" && len(breaks) != 0:
			t.Errorf("%s: %+v; want no break", c.name, breaks)
		case c.want != "" && (len(breaks) != 1 || !strings.Contains(breaks[0].Problem, c.want) || breaks[0].Subject != "alice"):
			t.Errorf("%s: %+v; want one break of alice's saying %q", c.name, breaks, c.want)
		}
	}
}

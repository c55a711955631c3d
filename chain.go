package fieldseal

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
)

// LinkProblem is how an entry fails to follow the one before it in its
// hash chain.
type LinkProblem int

const (
	LinkOK   LinkProblem = iota
	LinkSeq              // not the entry expected next: entries dropped, inserted or moved
	LinkPrev             // its prev_hash is not the previous entry's hash
	LinkHash             // its contents do not match its hash: edited
)

// ChainWalk follows one hash chain of the audit trail (a subject's lane)
// entry by entry, in seq order. It is the one walk behind `audit verify`
// (database rows), `audit archive` (each entry as it is written) and
// archive files (their lines); each words what it finds its own way.
type ChainWalk struct {
	Subject string
	Lane    int16
	Next    int64  // the seq expected next
	Prev    []byte // the hash the next entry must link to
	Broken  bool   // the chain had its first break: the rest is not judged
}

// StartChain begins a walk of subject's lane at entry first, whose
// predecessor's hash is prev (nil: entry 1, which links to zeros).
func StartChain(subject string, lane int16, first int64, prev []byte) ChainWalk {
	if prev == nil {
		prev = make([]byte, sha256.Size)
	}
	return ChainWalk{Subject: subject, Lane: lane, Next: first, Prev: prev}
}

// Step checks entry e, stored with prevHash and hash, against the chain so
// far and moves past it. It returns the chain's first break, and LinkOK
// for every entry after it (one break is reported per chain: what follows
// an edit no longer links).
func (w *ChainWalk) Step(e AuditEvent, prevHash, hash []byte) LinkProblem {
	p := LinkOK
	switch {
	case w.Broken:
	case e.Seq != w.Next:
		p = LinkSeq
	case !bytes.Equal(prevHash, w.Prev):
		p = LinkPrev
	case !bytes.Equal(hash, AuditEntryHash(w.Prev, e)):
		p = LinkHash
	}
	w.Broken = w.Broken || p != LinkOK
	w.Next, w.Prev = e.Seq+1, hash
	return p
}

// EndsAt reports whether the chain walked so far ends at entry last, whose
// hash is lastHash.
func (w *ChainWalk) EndsAt(last int64, lastHash []byte) bool {
	return w.Next-1 == last && bytes.Equal(w.Prev, lastHash)
}

// ArchiveSpan is one archive file's part of one chain.
type ArchiveSpan struct {
	File string
	ArchiveChain
}

// JoinArchives checks, chain by chain, that archives each verified on its
// own join one another without a gap or an overlap, and that the newest
// ends right before where the database's chain now starts (starts: the
// database's record of each archived chain). Each break names the files.
func JoinArchives(spans []ArchiveSpan, starts []ArchiveChain) []AuditBreak {
	type key struct {
		subject string
		lane    int16
	}
	byChain := map[key][]ArchiveSpan{}
	for _, s := range spans {
		k := key{s.Subject, s.Lane}
		byChain[k] = append(byChain[k], s)
	}
	inDB := map[key]ArchiveChain{}
	for _, s := range starts {
		inDB[key{s.Subject, s.Lane}] = s
	}
	keys := make([]key, 0, len(byChain))
	for k := range byChain {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.subject, b.subject), cmp.Compare(a.lane, b.lane))
	})
	var breaks []AuditBreak
	for _, k := range keys {
		ss := byChain[k]
		slices.SortFunc(ss, func(a, b ArchiveSpan) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
		report := func(seq int64, problem string) {
			breaks = append(breaks, AuditBreak{Subject: k.subject, Lane: k.lane, Seq: seq, Problem: problem})
		}
		for i := 1; i < len(ss); i++ {
			a, b := ss[i-1], ss[i]
			if b.FirstSeq != a.LastSeq+1 || b.PrevHash != a.LastHash {
				report(a.LastSeq+1, fmt.Sprintf("archive %s (entries %d to %d) does not join archive %s (entries %d to %d)", b.File, b.FirstSeq, b.LastSeq, a.File, a.FirstSeq, a.LastSeq))
			}
		}
		last := ss[len(ss)-1]
		st, archivedInDB := inDB[k]
		switch {
		case !archivedInDB:
			report(last.FirstSeq, fmt.Sprintf("archive %s holds entries %d to %d, but the database records no archive of this chain: "+
				"the archive's run did not commit, or the database's record of it was removed", last.File, last.FirstSeq, last.LastSeq))
		case st.FirstSeq > last.LastSeq+1:
			report(last.LastSeq+1, fmt.Sprintf("entries %d to %d were archived to a file not given (the database's chain starts at %d)", last.LastSeq+1, st.FirstSeq-1, st.FirstSeq))
		case st.FirstSeq != last.LastSeq+1 || st.PrevHash != last.LastHash:
			report(st.FirstSeq, fmt.Sprintf("the database's chain starts at entry %d, which does not follow archive %s's last entry %d", st.FirstSeq, last.File, last.LastSeq))
		}
	}
	return breaks
}

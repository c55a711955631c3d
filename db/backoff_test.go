package db

import (
	"testing"
	"time"
)

// The listener's reconnection waits grow from 100 ms to at most 30 s, each
// drawn from the upper half of its step, and start again after a success.
func TestBackoffGrowsCappedAndJittered(t *testing.T) {
	var b backoff
	step := backoffFirst
	seen := map[time.Duration]bool{}
	for i := range 20 {
		d := b.next()
		if d < step/2 || d > step {
			t.Fatalf("wait %d = %s; want within [%s, %s]", i, d, step/2, step)
		}
		seen[d] = true
		step = min(2*step, backoffCap)
	}
	if step != backoffCap {
		t.Errorf("after 20 waits the step is %s; want the cap %s", step, backoffCap)
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct waits in 20: no jitter", len(seen))
	}
	b.reset()
	if d := b.next(); d > backoffFirst {
		t.Errorf("first wait after reset = %s; want at most %s", d, backoffFirst)
	}
}

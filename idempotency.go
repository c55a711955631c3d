package fieldseal

// IdempotencyKeyMaxLength is the longest Idempotency-Key accepted.
const IdempotencyKeyMaxLength = 255

// Answer is an HTTP answer as kept for an Idempotency-Key and sent again,
// byte for byte, to a retry. It never holds a secret value.
type Answer struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Idempotent asks a write to run at most once for Key within 24 hours.
// Answer turns the write's result into its HTTP answer, which is stored in
// the write's own transaction: it commits with the write or not at all.
// Fingerprint identifies the request (see handlers/idempotency.go).
//
// A retry (the same Key and Fingerprint) runs nothing and gets *Replay as
// its error; the same Key with another Fingerprint gets EIDEMPOTENCYREUSED;
// a retry that cannot wait for a first still running (lock_timeout) gets
// EIDEMPOTENCYINUSE. A nil *Idempotent asks nothing.
type Idempotent[T any] struct {
	Key         string
	Fingerprint [32]byte
	Answer      func(T) Answer
}

// Replay is the error of a write whose Idempotency-Key has an answer
// already: that answer, to be sent again.
type Replay struct{ Answer Answer }

func (r *Replay) Error() string { return "this Idempotency-Key was answered before" }

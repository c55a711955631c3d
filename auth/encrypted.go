package auth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/fieldseal/fieldseal/internal/rsakey"
)

// Decrypter opens encrypted access tokens: a JWE (RSA-OAEP-256 key
// wrapping, A256GCM content) whose payload is the provider's signed JWT
// (a nested JWT, RFC 7519 section 5.2). The identity provider encrypts to
// a public key fieldseal publishes at /.well-known/jwks.json.
//
// It holds a ring of keys, each named by its kid (its JWK thumbprint):
// PEM files, or keys in a PKCS#11 token (an HSM), whose private half never
// leaves it: the content key is unwrapped inside the token. A token is
// decrypted with the key its kid names. Reload reads the list again
// (SIGHUP): add a key, let providers pick it up, then drop the old one.
type Decrypter struct {
	spec string // the comma-separated list it was loaded from
	hsm  HSM    // opens its PKCS#11 entries
	ring atomic.Pointer[keyRing]
}

// HSM opens the RSA key a PKCS#11 URI names, and returns it (its Public an
// *rsa.PublicKey), what it is for messages (never a PIN) and the release
// of its sessions: hsm.OpenRSA. It is given to LoadDecrypter rather than
// called from here so that auth, and handlers, which import it, build
// without cgo.
type HSM func(uri string) (key crypto.Decrypter, what string, release func(), err error)

// keyRing is one generation of the list.
type keyRing struct {
	keys  map[string]*decryptionKey
	jwks  []byte
	close func() // releases the PKCS#11 sessions of this generation
}

// decryptionKey is one key of the ring.
type decryptionKey struct {
	kid  string
	pub  *rsa.PublicKey
	dec  crypto.Decrypter // *rsa.PrivateKey, or a PKCS#11 key
	from string           // where it came from, for messages: never a PIN
}

// DecryptKey implements go-jose's OpaqueKeyDecrypter: RSA-OAEP with
// SHA-256, by the key itself (in the HSM for a PKCS#11 key).
func (k *decryptionKey) DecryptKey(encryptedKey []byte, _ jose.Header) ([]byte, error) {
	return k.dec.Decrypt(rand.Reader, encryptedKey, &rsa.OAEPOptions{Hash: crypto.SHA256})
}

// LoadDecrypter reads the keys of spec: a comma-separated list of PEM
// files (an RSA private key, PKCS#8 or PKCS#1, at least 2048 bits) and
// PKCS#11 URIs (RFC 7512, opened by hsm: package hsm says what they may
// hold); or "@" and the path of a file holding that list (one entry a
// line, # comments), which Reload reads again, so that keys can be added
// and dropped without a restart. hsm may be nil when no entry is a
// PKCS#11 URI.
func LoadDecrypter(spec string, hsm HSM) (*Decrypter, error) {
	ring, err := loadRing(spec, hsm)
	if err != nil {
		return nil, err
	}
	d := &Decrypter{spec: spec, hsm: hsm}
	d.ring.Store(ring)
	return d, nil
}

// NewDecrypter returns a Decrypter of one key in memory.
func NewDecrypter(key *rsa.PrivateKey) (*Decrypter, error) {
	k, err := newDecryptionKey(&key.PublicKey, key, "a key in memory")
	if err != nil {
		return nil, err
	}
	ring, err := newRing([]*decryptionKey{k}, func() {})
	if err != nil {
		return nil, err
	}
	d := &Decrypter{}
	d.ring.Store(ring)
	return d, nil
}

// Reload reads the list again. On failure the current keys stay, and the
// error says why; on success the new keys serve at once and the old
// generation's PKCS#11 sessions are released a minute later (requests in
// flight finish with them).
func (d *Decrypter) Reload() error {
	if d.spec == "" {
		return errors.New("keys given in memory cannot be reloaded")
	}
	ring, err := loadRing(d.spec, d.hsm)
	if err != nil {
		return err
	}
	old := d.ring.Swap(ring)
	time.AfterFunc(time.Minute, old.close)
	return nil
}

// KeyIDs returns the kids of the current keys, sorted.
func (d *Decrypter) KeyIDs() []string {
	return slices.Sorted(maps.Keys(d.ring.Load().keys))
}

func loadRing(spec string, hsm HSM) (*keyRing, error) {
	var keys []*decryptionKey
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	entries, err := specEntries(spec)
	if err != nil {
		return nil, err
	}
	for _, entry := range entries {
		var k *decryptionKey
		var err error
		if strings.HasPrefix(entry, "pkcs11:") {
			k, err = loadHSMKey(entry, hsm, &closers)
		} else {
			k, err = loadFileKey(entry)
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		keys = append(keys, k)
	}
	ring, err := newRing(keys, closeAll)
	if err != nil {
		closeAll()
		return nil, err
	}
	return ring, nil
}

// specEntries is the list spec gives, or the list in the file it names.
func specEntries(spec string) ([]string, error) {
	file, isFile := strings.CutPrefix(spec, "@")
	text := spec
	if isFile {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("the list of keys: %w", err)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); line != "" {
				kept = append(kept, line)
			}
		}
		text = strings.Join(kept, ",")
	}
	var entries []string
	for i, entry := range strings.Split(text, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("entry %d of the list of keys is empty", i+1)
		}
		entries = append(entries, entry)
	}
	return entries, nil
}

func loadFileKey(path string) (*decryptionKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := rsakey.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return newDecryptionKey(&key.PublicKey, key, "file "+path)
}

// loadHSMKey opens a PKCS#11 entry with hsm, adding the release of its
// sessions to closers.
func loadHSMKey(uri string, hsm HSM, closers *[]func()) (*decryptionKey, error) {
	if hsm == nil {
		return nil, errors.New("a PKCS#11 key was given, but nothing here opens PKCS#11 keys")
	}
	dec, what, release, err := hsm(uri)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, release)
	pub, ok := dec.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", what)
	}
	return newDecryptionKey(pub, dec, what)
}

func newDecryptionKey(pub *rsa.PublicKey, dec crypto.Decrypter, from string) (*decryptionKey, error) {
	if pub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("%s: the token decryption key has %d bits; at least %d are needed", from, pub.N.BitLen(), MinRSABits)
	}
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &decryptionKey{kid: base64.RawURLEncoding.EncodeToString(tp), pub: pub, dec: dec, from: from}, nil
}

func newRing(keys []*decryptionKey, release func()) (*keyRing, error) {
	r := &keyRing{keys: map[string]*decryptionKey{}, close: release}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		if other, dup := r.keys[k.kid]; dup {
			return nil, fmt.Errorf("%s and %s are the same key", other.from, k.from)
		}
		r.keys[k.kid] = k
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Use: "enc", Algorithm: string(jose.RSA_OAEP_256)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	r.jwks = append(b, '\n')
	return r, nil
}

// PublicJWKS returns the JWK Set of the public halves, "use": "enc": what
// an identity provider encrypts access tokens to.
func (d *Decrypter) PublicJWKS() []byte {
	if d == nil {
		return []byte(`{"keys":[]}` + "\n")
	}
	return d.ring.Load().jwks
}

// isEncrypted reports whether token has the five parts of a compact JWE.
func isEncrypted(token string) bool { return strings.Count(token, ".") == 4 }

// has reports whether kid is among the current keys.
func (d *Decrypter) has(kid string) bool {
	if d == nil {
		return false
	}
	_, ok := d.ring.Load().keys[kid]
	return ok
}

// open decrypts a compact JWE and returns the signed JWT inside it and
// the kid of the key that opened it. Every failure is a refusal with a
// fixed reason.
func (d *Decrypter) open(token string) (string, string, error) {
	if d == nil {
		return "", "", refuse("encrypted tokens not accepted")
	}
	jwe, err := jose.ParseEncryptedCompact(token, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return "", "", refuse("unsupported or malformed encrypted token")
	}
	ring := d.ring.Load()
	key := ring.keys[jwe.Header.KeyID]
	if jwe.Header.KeyID == "" && len(ring.keys) == 1 {
		for _, k := range ring.keys {
			key = k // one key: a token without kid is for it
		}
	}
	if key == nil {
		return "", "", refuse("token encrypted to another key")
	}
	if cty, _ := jwe.Header.ExtraHeaders[jose.HeaderContentType].(string); cty != "" && !strings.EqualFold(cty, "JWT") {
		return "", "", refuse("encrypted token does not hold a JWT")
	}
	inner, err := jwe.Decrypt(key)
	if err != nil {
		return "", "", refuse("cannot decrypt token")
	}
	if strings.Count(string(inner), ".") != 2 {
		return "", "", refuse("encrypted token does not hold a signed JWT")
	}
	return string(inner), key.kid, nil
}

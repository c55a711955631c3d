// Package hsm opens keys in PKCS#11 tokens (HSMs): the token decryption
// keys of encrypted access tokens (RSA, for auth.LoadDecrypter) and the
// Ed25519 key that signs audit checkpoints. It is the one package that
// needs cgo (miekg/pkcs11 loads the token's library): auth, handlers, db
// and client build without it.
package hsm

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// pkcs11URI is what fieldseal reads of a PKCS#11 URI (RFC 7512):
//
//	pkcs11:token=fieldseal;object=jwe-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin
//
// The token by label (token) or serial number (serial); the key by label
// (object), id (id, percent-encoded bytes) or both; type=private if given;
// the module by module-path; the PIN from a file (pin-source=file:PATH or
// PATH; its first line) or, discouraged since it then sits in the
// configuration, pin-value. Values are percent-decoded. Anything else is
// refused by name. Nothing read here, the PIN least of all, is ever put
// in an error: errors name the token and object only.
type pkcs11URI struct {
	token, serial, object string
	id                    []byte
	modulePath, pin       string
}

// describe names the key without anything secret.
func (u pkcs11URI) describe() string {
	var b strings.Builder
	b.WriteString("PKCS#11 ")
	if u.token != "" {
		fmt.Fprintf(&b, "token %q", u.token)
	} else {
		fmt.Fprintf(&b, "token serial %q", u.serial)
	}
	if u.object != "" {
		fmt.Fprintf(&b, " object %q", u.object)
	}
	if u.id != nil {
		fmt.Fprintf(&b, " id %x", u.id)
	}
	return b.String()
}

func parsePKCS11URI(s string) (pkcs11URI, error) {
	var u pkcs11URI
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return u, errors.New("a PKCS#11 URI starts with pkcs11:")
	}
	path, query, _ := strings.Cut(rest, "?")
	pinSource, pinValue := "", ""
	for _, part := range []struct {
		text, sep string
		query     bool
	}{{path, ";", false}, {query, "&", true}} {
		if part.text == "" {
			continue
		}
		for _, attr := range strings.Split(part.text, part.sep) {
			name, raw, found := strings.Cut(attr, "=")
			if !found {
				return u, fmt.Errorf("PKCS#11 URI attribute %q has no value", name)
			}
			v, err := url.PathUnescape(raw)
			if err != nil {
				return u, fmt.Errorf("PKCS#11 URI attribute %q is not validly percent-encoded", name)
			}
			switch {
			case !part.query && name == "token":
				u.token = v
			case !part.query && name == "serial":
				u.serial = v
			case !part.query && name == "object":
				u.object = v
			case !part.query && name == "id":
				u.id = []byte(v)
			case !part.query && name == "type":
				if v != "private" {
					return u, fmt.Errorf("PKCS#11 URI type=%q: the token decryption key is a private key (type=private)", v)
				}
			case part.query && name == "module-path":
				u.modulePath = v
			case part.query && name == "pin-source":
				pinSource = v
			case part.query && name == "pin-value":
				pinValue = v
			default:
				return u, fmt.Errorf("PKCS#11 URI attribute %q is not one fieldseal reads (token, serial, object, id, type; module-path, pin-source, pin-value)", name)
			}
		}
	}
	switch {
	case (u.token == "") == (u.serial == ""):
		return u, errors.New("a PKCS#11 URI names its token by exactly one of token (label) or serial")
	case u.object == "" && u.id == nil:
		return u, fmt.Errorf("the PKCS#11 URI of %s names no key: give object (its label), id, or both", u.describe())
	case u.modulePath == "":
		return u, fmt.Errorf("the PKCS#11 URI of %s has no module-path (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)", u.describe())
	case pinSource != "" && pinValue != "":
		return u, fmt.Errorf("the PKCS#11 URI of %s has both pin-source and pin-value: give one", u.describe())
	case pinSource == "" && pinValue == "":
		return u, fmt.Errorf("the PKCS#11 URI of %s has no pin-source (a file holding the PIN)", u.describe())
	}
	u.pin = pinValue
	if pinSource != "" {
		file := strings.TrimPrefix(pinSource, "file:")
		b, err := os.ReadFile(file)
		if err != nil {
			return u, fmt.Errorf("the PIN file of %s: %w", u.describe(), err)
		}
		u.pin, _, _ = strings.Cut(string(b), "\n")
		u.pin = strings.TrimSuffix(u.pin, "\r")
	}
	return u, nil
}

// modules are the PKCS#11 libraries loaded in this process, by path:
// initialised once and kept for the process's life (a library is
// initialised once per process; reloading keys reuses it).
var (
	modulesMu sync.Mutex
	modules   = map[string]*pkcs11.Ctx{}
)

func module(path string) (*pkcs11.Ctx, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m, ok := modules[path]; ok {
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("the PKCS#11 module: %w", err)
	}
	m := pkcs11.New(path)
	if m == nil {
		return nil, fmt.Errorf("the PKCS#11 module %s could not be loaded (not a PKCS#11 library?)", path)
	}
	if err := m.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		m.Destroy()
		return nil, fmt.Errorf("the PKCS#11 module %s: C_Initialize: %w", path, err)
	}
	modules[path] = m
	return m, nil
}

// hsmObject is a private key in a PKCS#11 token, with a pool of logged-in
// sessions to use it.
type hsmObject struct {
	mod      *pkcs11.Ctx
	slot     uint
	handle   atomic.Uint64 // the private key's pkcs11.ObjectHandle: found again with a new session
	sessions chan pkcs11.SessionHandle
	uri      pkcs11URI // holds the PIN, to log in again after the token restarts
}

// withSession runs fn on a session of the pool. A session the token no
// longer knows (a network HSM restarted, a session closed under us) is
// replaced, logged in again, and fn tried once more on the new one.
func (o *hsmObject) withSession(fn func(s pkcs11.SessionHandle) error) error {
	s := <-o.sessions
	defer func() { o.sessions <- s }()
	err := fn(s)
	if !sessionLost(err) {
		return err
	}
	_ = o.mod.CloseSession(s)
	fresh, openErr := o.openSession()
	if openErr != nil {
		return fmt.Errorf("%w (and a new session: %v)", err, openErr)
	}
	s = fresh
	// A token that lost every session (restarted, or its last session
	// closed) may number its objects anew: the key's handle is found again.
	if h, ferr := o.findIn(s, pkcs11.CKO_PRIVATE_KEY); ferr == nil {
		o.handle.Store(uint64(h))
	}
	return fn(s)
}

// key is the private key's handle.
func (o *hsmObject) key() pkcs11.ObjectHandle { return pkcs11.ObjectHandle(o.handle.Load()) }

// sessionLost reports a PKCS#11 error that a new session may cure.
func sessionLost(err error) bool {
	for _, code := range []uint{pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID} {
		if errors.Is(err, pkcs11.Error(code)) {
			return true
		}
	}
	return false
}

// openSession opens a session on the key's token and logs the
// application in, unless it is already.
func (o *hsmObject) openSession() (pkcs11.SessionHandle, error) {
	s, err := o.mod.OpenSession(o.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return 0, fmt.Errorf("C_OpenSession: %w", err)
	}
	if err := o.mod.Login(s, pkcs11.CKU_USER, o.uri.pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		_ = o.mod.CloseSession(s)
		return 0, fmt.Errorf("C_Login: %w", err)
	}
	return s, nil
}

// pkcs11Sessions is how many operations one key runs at once.
const pkcs11Sessions = 4

// openHSMObject finds the private key a PKCS#11 URI names, logged in, and
// returns it with the release of its sessions. Errors name the token and
// object, never the PIN (PKCS#11 errors name return codes:
// CKR_PIN_INCORRECT…).
func openHSMObject(uri string) (*hsmObject, func(), error) {
	u, err := parsePKCS11URI(uri)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*hsmObject, func(), error) { return nil, nil, fmt.Errorf("%s: %w", u.describe(), err) }
	mod, err := module(u.modulePath)
	if err != nil {
		return fail(err)
	}
	slot, err := findToken(mod, u)
	if err != nil {
		return fail(err)
	}
	o := &hsmObject{mod: mod, slot: slot, uri: u, sessions: make(chan pkcs11.SessionHandle, pkcs11Sessions)}
	release := func() {
		for {
			select {
			case s := <-o.sessions:
				_ = mod.CloseSession(s)
			default:
				return
			}
		}
	}
	for range pkcs11Sessions {
		s, err := o.openSession() // the first logs the application in; the others find it so
		if err != nil {
			release()
			return fail(err)
		}
		o.sessions <- s
	}
	h, err := o.find(pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		release()
		return fail(err)
	}
	o.handle.Store(uint64(h))
	return o, release, nil
}

// find locates the one object of class the URI names.
func (o *hsmObject) find(class uint) (pkcs11.ObjectHandle, error) {
	var h pkcs11.ObjectHandle
	err := o.withSession(func(s pkcs11.SessionHandle) error {
		var err error
		h, err = o.findIn(s, class)
		return err
	})
	return h, err
}

// findIn is find on session s.
func (o *hsmObject) findIn(s pkcs11.SessionHandle, class uint) (pkcs11.ObjectHandle, error) {
	what := "private key"
	if class == pkcs11.CKO_PUBLIC_KEY {
		what = "public key"
	}
	template := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if o.uri.object != "" {
		template = append(template, pkcs11.NewAttribute(pkcs11.CKA_LABEL, o.uri.object))
	}
	if o.uri.id != nil {
		template = append(template, pkcs11.NewAttribute(pkcs11.CKA_ID, o.uri.id))
	}
	if err := o.mod.FindObjectsInit(s, template); err != nil {
		return 0, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	found, _, err := o.mod.FindObjects(s, 2)
	_ = o.mod.FindObjectsFinal(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("C_FindObjects: %w", err)
	case len(found) == 0:
		return 0, fmt.Errorf("no such %s on the token", what)
	case len(found) > 1:
		return 0, fmt.Errorf("more than one %s on the token matches: name it by object and id", what)
	}
	return found[0], nil
}

// attributes reads attributes of an object.
func (o *hsmObject) attributes(h pkcs11.ObjectHandle, types ...uint) ([][]byte, error) {
	template := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		template[i] = pkcs11.NewAttribute(t, nil)
	}
	var attrs []*pkcs11.Attribute
	if err := o.withSession(func(s pkcs11.SessionHandle) (err error) {
		attrs, err = o.mod.GetAttributeValue(s, h, template)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([][]byte, len(attrs))
	for i, a := range attrs {
		out[i] = a.Value
	}
	return out, nil
}

// keyType is the key's CKA_KEY_TYPE, a CK_ULONG in the machine's byte order.
func (o *hsmObject) keyType() (uint, error) {
	v, err := o.attributes(o.key(), pkcs11.CKA_KEY_TYPE)
	switch {
	case err != nil:
		return 0, err
	case len(v[0]) == 8:
		return uint(binary.NativeEndian.Uint64(v[0])), nil
	case len(v[0]) == 4:
		return uint(binary.NativeEndian.Uint32(v[0])), nil
	}
	return 0, errors.New("CKA_KEY_TYPE has an unexpected size")
}

func findToken(mod *pkcs11.Ctx, u pkcs11URI) (uint, error) {
	slots, err := mod.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		info, err := mod.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if u.token != "" && strings.TrimRight(info.Label, " \x00") == u.token ||
			u.serial != "" && strings.TrimRight(info.SerialNumber, " \x00") == u.serial {
			return s, nil
		}
	}
	return 0, errors.New("no such token in the module's slots (SoftHSM2 sees only the tokens that existed when the process started)")
}

// hsmKey is an RSA private key in a PKCS#11 token. Its private half never
// leaves the token: the token unwraps each content key.
type hsmKey struct {
	*hsmObject
	pub *rsa.PublicKey
	// raw: the token cannot do RSA-OAEP with SHA-256 (SoftHSM 2.6 does
	// OAEP with SHA-1 only), so it does the RSA private-key operation
	// alone (CKM_RSA_X_509) and the OAEP padding is removed here.
	raw bool
}

// OpenRSA opens the RSA private key a PKCS#11 URI names (see
// parsePKCS11URI), for RSA-OAEP-256, and returns it, what it is (the
// token and object, never the PIN: for messages) and the release of its
// sessions. Its Public is the key's *rsa.PublicKey, read from the token.
// It is what auth.LoadDecrypter takes for "pkcs11:" entries.
func OpenRSA(uri string) (crypto.Decrypter, string, func(), error) {
	o, release, err := openHSMObject(uri)
	if err != nil {
		return nil, "", nil, err
	}
	k := &hsmKey{hsmObject: o}
	fail := func(err error) (crypto.Decrypter, string, func(), error) {
		release()
		return nil, "", nil, fmt.Errorf("%s: %w", o.uri.describe(), err)
	}
	if t, err := o.keyType(); err != nil || t != pkcs11.CKK_RSA {
		return fail(errors.New("not an RSA key: the token decryption key is RSA (RSA-OAEP-256)"))
	}
	// An RSA private key object carries its modulus and public exponent.
	v, err := o.attributes(o.key(), pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
	if err != nil {
		return fail(fmt.Errorf("its public half cannot be read: %w", err))
	}
	e := new(big.Int).SetBytes(v[1])
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
		return fail(errors.New("the key's public exponent is out of range"))
	}
	k.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(v[0]), E: int(e.Int64())}
	if err := k.probe(); err != nil {
		return fail(err)
	}
	return k, o.uri.describe(), release, nil
}

// probe decides how the token unwraps: RSA-OAEP with SHA-256 if it can,
// else the raw RSA operation, checked on a message encrypted here.
func (k *hsmKey) probe() error {
	want := make([]byte, 32)
	_, _ = rand.Read(want)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, k.pub, want, nil)
	if err != nil {
		return err
	}
	got, err := k.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256})
	if err != nil {
		k.raw = true
		var rawErr error
		if got, rawErr = k.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); rawErr != nil {
			return fmt.Errorf("the token does neither RSA-OAEP with SHA-256 (%v) nor raw RSA (%v) with this key", err, rawErr)
		}
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return errors.New("the token's decryption of a test message is wrong")
	}
	return nil
}

// Public implements crypto.Decrypter.
func (k *hsmKey) Public() crypto.PublicKey { return k.pub }

// Decrypt implements crypto.Decrypter for RSA-OAEP with SHA-256 only.
func (k *hsmKey) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.OAEPOptions)
	if !ok || o.Hash != crypto.SHA256 || (o.MGFHash != 0 && o.MGFHash != crypto.SHA256) {
		return nil, errors.New("only RSA-OAEP with SHA-256")
	}
	mech := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, pkcs11.CKZ_DATA_SPECIFIED, o.Label))
	if k.raw {
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)
	}
	var out []byte
	err := k.withSession(func(s pkcs11.SessionHandle) error {
		if err := k.mod.DecryptInit(s, []*pkcs11.Mechanism{mech}, k.key()); err != nil {
			return err
		}
		var err error
		out, err = k.mod.Decrypt(s, ciphertext)
		return err
	})
	if err != nil || !k.raw {
		return out, err
	}
	size := (k.pub.N.BitLen() + 7) / 8
	if len(out) > size {
		return nil, errors.New("the token's raw RSA output is longer than the modulus")
	}
	em := make([]byte, size)
	copy(em[size-len(out):], out)
	return oaepDecode(em, o.Label)
}

// oaepDecode removes EME-OAEP padding with SHA-256 and MGF1-SHA-256 (RFC
// 8017 section 7.1.2), in constant time as crypto/rsa does: which check
// failed is never told.
func oaepDecode(em, label []byte) ([]byte, error) {
	const hLen = sha256.Size
	if len(em) < 2*hLen+2 {
		return nil, errors.New("decryption error")
	}
	lHash := sha256.Sum256(label)
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed, db := em[1:hLen+1], em[hLen+1:]
	mgf1XOR(seed, db)
	mgf1XOR(db, seed)
	lHashGood := subtle.ConstantTimeCompare(lHash[:], db[:hLen])
	rest := db[hLen:]
	lookingForIndex, index, invalid := 1, 0, 0
	for i := range rest {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHashGood&^invalid&^lookingForIndex != 1 {
		return nil, errors.New("decryption error")
	}
	return rest[index+1:], nil
}

// mgf1XOR XORs out with MGF1-SHA-256 of seed.
func mgf1XOR(out, seed []byte) {
	var counter [4]byte
	done := 0
	for done < len(out) {
		h := sha256.New()
		h.Write(seed)
		h.Write(counter[:])
		digest := h.Sum(nil)
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			if counter[i]++; counter[i] != 0 {
				break
			}
		}
	}
}

// PKCS#11 3.0 names miekg/pkcs11 v1.1.2 does not have.
const (
	ckkECEdwards = 0x40   // CKK_EC_EDWARDS
	ckmEdDSA     = 0x1057 // CKM_EDDSA
)

// hsmEd25519 is an Ed25519 private key in a PKCS#11 token: it signs there
// (CKM_EDDSA) and never leaves it.
type hsmEd25519 struct {
	*hsmObject
	pub ed25519.PublicKey
}

// Public implements crypto.Signer.
func (k *hsmEd25519) Public() crypto.PublicKey { return k.pub }

// Sign implements crypto.Signer: pure Ed25519 of msg (no pre-hash).
func (k *hsmEd25519) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, errors.New("Ed25519 signs the message itself, not a digest")
	}
	var sig []byte
	err := k.withSession(func(s pkcs11.SessionHandle) error {
		if err := k.mod.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, k.key()); err != nil {
			return err
		}
		var err error
		sig, err = k.mod.Sign(s, msg)
		return err
	})
	return sig, err
}

// OpenSigner opens the Ed25519 key a PKCS#11 URI names (as
// FIELDSEAL_TOKEN_DECRYPTION_KEY's URIs: see parsePKCS11URI), for signing
// audit checkpoints, and returns it with the release of its sessions. It
// signs a test message first and checks the signature with the key's
// public half, read from the token's public key object.
func OpenSigner(uri string) (crypto.Signer, func(), error) {
	o, release, err := openHSMObject(uri)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (crypto.Signer, func(), error) {
		release()
		return nil, nil, fmt.Errorf("%s: %w", o.uri.describe(), err)
	}
	if t, err := o.keyType(); err != nil || t != ckkECEdwards {
		return fail(errors.New("not an Ed25519 key (CKK_EC_EDWARDS)"))
	}
	pubHandle, err := o.find(pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return fail(err)
	}
	v, err := o.attributes(pubHandle, pkcs11.CKA_EC_POINT)
	if err != nil {
		return fail(fmt.Errorf("its public key cannot be read: %w", err))
	}
	point := v[0]
	if len(point) == 2+ed25519.PublicKeySize && point[0] == 0x04 && point[1] == ed25519.PublicKeySize {
		point = point[2:] // DER OCTET STRING, as PKCS#11 3.0 says; some tokens give the 32 bytes bare
	}
	if len(point) != ed25519.PublicKeySize {
		return fail(errors.New("its public key is not an Ed25519 point"))
	}
	k := &hsmEd25519{hsmObject: o, pub: ed25519.PublicKey(point)}
	msg := make([]byte, 32)
	_, _ = rand.Read(msg)
	sig, err := k.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return fail(fmt.Errorf("C_Sign: %w", err))
	}
	if !ed25519.Verify(k.pub, msg, sig) {
		return fail(errors.New("the token's signature does not verify with the key's public half"))
	}
	return k, release, nil
}

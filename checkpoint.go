package fieldseal

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Checkpoint is every audit chain head (each subject's lanes) at one
// moment: `fieldseal audit checkpoint` writes it, to be kept outside the
// database; `fieldseal audit verify --checkpoint` proves later that every
// entry it names is still in its chain, which finds a tail cut together
// with its head (RFC 9162's signed tree heads play this part in
// Certificate Transparency). Signed with Ed25519 when a key is given.
type Checkpoint struct {
	Version   int                  `json:"version"` // 1
	Database  string               `json:"database"`
	At        string               `json:"at"` // RFC 3339, the database's clock
	Heads     []CheckpointHead     `json:"heads"`
	Signature *CheckpointSignature `json:"signature,omitempty"`
}

// CheckpointHead is one lane's newest entry.
type CheckpointHead struct {
	Subject string `json:"subject"`
	Lane    int16  `json:"lane"`
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"` // hex
}

// CheckpointSignature is an Ed25519 signature over the checkpoint's
// compact JSON without its signature, and the public key that made it.
type CheckpointSignature struct {
	Algorithm string `json:"alg"`        // "Ed25519"
	PublicKey string `json:"public_key"` // standard base64 of the 32-byte key
	Value     string `json:"value"`      // standard base64 of the signature
}

func (c Checkpoint) signedBytes() ([]byte, error) {
	c.Signature = nil
	return json.Marshal(c)
}

// Sign signs c with an Ed25519 key: an ed25519.PrivateKey, or a key in
// an HSM that signs there. The signature is checked before it is kept.
func (c *Checkpoint) Sign(key crypto.Signer) error {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return errors.New("the checkpoint signing key is not an Ed25519 key")
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("sign the checkpoint: %w", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("the checkpoint's signature does not verify with the signing key's public half")
	}
	c.Signature = &CheckpointSignature{
		Algorithm: "Ed25519",
		PublicKey: base64.StdEncoding.EncodeToString(pub),
		Value:     base64.StdEncoding.EncodeToString(sig),
	}
	return nil
}

// VerifySignature checks c's signature: by want when it is not nil (and
// then a signature by another key fails), else by the key c names.
func (c Checkpoint) VerifySignature(want ed25519.PublicKey) error {
	if c.Signature == nil {
		return errors.New("the checkpoint is not signed")
	}
	if c.Signature.Algorithm != "Ed25519" {
		return errors.New("the checkpoint's signature is not Ed25519")
	}
	pub, err := base64.StdEncoding.DecodeString(c.Signature.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("the checkpoint names no valid public key")
	}
	if want != nil && !want.Equal(ed25519.PublicKey(pub)) {
		return errors.New("the checkpoint is signed by another key than the one given")
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature.Value)
	if err != nil {
		return errors.New("the checkpoint's signature is not base64")
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		return errors.New("the checkpoint's signature does not verify: it was altered after signing")
	}
	return nil
}

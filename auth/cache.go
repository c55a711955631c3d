package auth

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers tokens already verified, so that a client's repeated
// requests cost a hash and a map lookup instead of an RSA verification.
// Bounded (least recently used entries go first) and keyed by the token's
// SHA-256, so it never holds a token. An entry lives until the token's exp.
// What can change while a token is cached is checked on every hit anyway:
// revocation, and whether its signing key is still in the JWKS.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // front: most recently used
	entries map[[32]byte]*list.Element
}

type cacheEntry struct {
	key    [32]byte
	keys   cachedKeys
	claims Claims
}

// cachedKeys are the keys a cached token was verified with: the kid of
// its signing key and, for an encrypted token, of the decryption key. A
// hit counts only while both are still trusted.
type cachedKeys struct {
	sig, enc string
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, order: list.New(), entries: make(map[[32]byte]*list.Element)}
}

func cacheKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// get returns the cached claims and keys of a token not yet expired at
// now.
func (c *tokenCache) get(key [32]byte, now time.Time) (Claims, cachedKeys, bool) {
	if c == nil {
		return Claims{}, cachedKeys{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return Claims{}, cachedKeys{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.claims.ExpiresAt) {
		c.order.Remove(el)
		delete(c.entries, key)
		return Claims{}, cachedKeys{}, false
	}
	c.order.MoveToFront(el)
	return e.claims, e.keys, true
}

func (c *tokenCache) put(key [32]byte, keys cachedKeys, claims Claims) {
	if c == nil || keys.sig == "" {
		return // without a kid there is no cheap check that the key is still trusted
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, keys: keys, claims: claims})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

func (c *tokenCache) drop(key [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.Remove(el)
		delete(c.entries, key)
	}
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

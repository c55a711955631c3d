// Package auth verifies the bearer tokens that clients send: RS256 JWTs
// from the client's identity provider, checked against the provider's
// published JWKS.
//
// Invariants:
//   - Only algorithms on an explicit allow-list are accepted (RS256 by
//     default); "none", HMAC and anything else are refused before a key is
//     looked up.
//   - Keys come only from the configured JWKS (file, URL, or the jwks_uri of
//     the issuer's OIDC discovery document), found by "kid". The jwk, jku,
//     x5u and x5c headers are never used and never fetched; a token naming a
//     critical extension ("crit") is refused, since none is understood.
//   - exp, iss, aud and a non-empty string sub are required; nbf and iat are
//     checked with a small leeway; a lifetime above the maximum is refused.
//   - Remote JWKS and discovery URLs must be https, except on loopback.
//   - A refusal's reason is a short fixed phrase that never echoes the token.
package auth

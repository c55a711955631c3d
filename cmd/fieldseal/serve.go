package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/handlers"
	"github.com/fieldseal/fieldseal/hsm"
	"github.com/fieldseal/fieldseal/internal/api"
)

// serveConfig is everything serve needs, read from flags and environment.
type serveConfig struct {
	databaseURL     string
	issuer          string
	audience        string
	jwksURL         string
	jwksFile        string
	listen          string
	tlsCert         string
	tlsKey          string
	trustProxyTLS   bool
	maxBody         int64
	tokenMaxLife    time.Duration
	logLevel        string
	throttle        db.Throttle
	algorithms      string
	requireATJWT    bool
	tokenCache      int
	decryptionKey   string
	requireEnc      bool
	unknownKID      time.Duration
	shutdownTimeout time.Duration
	db              db.Config // the timeouts and pooler settings; URLs and throttle are above
}

// serveFlags declares serve's flags on f; dev shares most of them.
func serveFlags(f *flags, c *serveConfig) {
	f.fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL of the app's login role, a member of fieldseal_app ($"+f.variable("database-url")+")")
	f.fs.StringVar(&c.issuer, "issuer", "", "expected token issuer (iss); without a JWKS source, OIDC discovery from <issuer>/.well-known/openid-configuration ($"+f.variable("issuer")+")")
	f.fs.StringVar(&c.audience, "audience", "", "expected token audience (aud) ($"+f.variable("audience")+")")
	f.fs.StringVar(&c.jwksURL, "jwks-url", "", "URL of the issuer's JWKS; https unless on loopback ($"+f.variable("jwks-url")+")")
	f.fs.StringVar(&c.jwksFile, "jwks-file", "", "file holding the issuer's JWKS ($"+f.variable("jwks-file")+")")
	f.fs.DurationVar(&c.unknownKID, "jwks-unknown-kid-interval", 10*time.Second, "least time between two JWKS fetches caused by tokens naming unknown kids; others are refused at once ($"+f.variable("jwks-unknown-kid-interval")+")")
	f.fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long requests in flight may take to finish ($"+f.variable("shutdown-timeout")+")")
	f.fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to listen on ($"+f.variable("listen")+")")
	f.fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate file: serve HTTPS ($"+f.variable("tls-cert")+")")
	f.fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key file of --tls-cert ($"+f.variable("tls-key")+")")
	f.fs.BoolVar(&c.trustProxyTLS, "trust-proxy-tls", false, "allow plain HTTP on a non-loopback address because a TLS-terminating proxy sits in front ($"+f.variable("trust-proxy-tls")+")")
	f.fs.Int64Var(&c.maxBody, "max-body-bytes", handlers.DefaultMaxBodyBytes, "largest request body accepted; larger answers 413 ($"+f.variable("max-body-bytes")+")")
	f.fs.DurationVar(&c.tokenMaxLife, "token-max-lifetime", 24*time.Hour, "refuse tokens whose exp - iat exceeds this ($"+f.variable("token-max-lifetime")+")")
	f.fs.StringVar(&c.algorithms, "token-algorithms", "RS256", "comma-separated signature algorithms to accept: RS256, RS384, RS512, PS256, PS384, PS512 ($"+f.variable("token-algorithms")+")")
	f.fs.BoolVar(&c.requireATJWT, "token-require-at-jwt", false, "refuse tokens whose typ header is not at+jwt (RFC 9068) ($"+f.variable("token-require-at-jwt")+")")
	f.fs.StringVar(&c.decryptionKey, "token-decryption-key", "", "the RSA keys that open encrypted access tokens (nested JWE, RSA-OAEP-256 + A256GCM), comma-separated: PEM files or PKCS#11 URIs (pkcs11:token=…;object=…?module-path=…&pin-source=file:…); their public halves are served at /.well-known/jwks.json; SIGHUP reloads the list ($"+f.variable("token-decryption-key")+")")
	f.fs.BoolVar(&c.requireEnc, "token-require-encryption", false, "refuse access tokens that are not encrypted ($"+f.variable("token-require-encryption")+")")
	f.fs.IntVar(&c.tokenCache, "token-cache-size", auth.DefaultCacheSize, "verified tokens remembered (LRU) so they are not RSA-verified again until they expire; 0 disables ($"+f.variable("token-cache-size")+")")
	f.fs.IntVar(&c.throttle.TokenLimit, "wrong-key-limit", db.DefaultThrottle.TokenLimit, "wrong-key answers per token per window before its key-bearing requests answer 429 ($"+f.variable("wrong-key-limit")+")")
	f.fs.IntVar(&c.throttle.SubjectLimit, "wrong-key-subject-limit", db.DefaultThrottle.SubjectLimit, "wrong-key answers per subject (all its tokens) per window before 429 ($"+f.variable("wrong-key-subject-limit")+")")
	f.fs.DurationVar(&c.throttle.Window, "wrong-key-window", db.DefaultThrottle.Window, "the wrong-key throttling window ($"+f.variable("wrong-key-window")+")")
	f.fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error ($"+f.variable("log-level")+")")
	t := &c.db.Timeouts
	f.fs.DurationVar(&t.Statement, "request-timeout", db.DefaultTimeouts.Statement, "deadline of every request, and statement_timeout of its statements; past it the answer is 503 ($"+f.variable("request-timeout")+")")
	f.fs.DurationVar(&t.Long, "long-request-timeout", db.DefaultTimeouts.Long, "the same for key rotation and export, which read or rewrite all of a subject's records ($"+f.variable("long-request-timeout")+")")
	f.fs.DurationVar(&t.Lock, "lock-timeout", db.DefaultTimeouts.Lock, "lock_timeout of every transaction: how long a request waits on a lock someone else holds before 503 ($"+f.variable("lock-timeout")+")")
	f.fs.DurationVar(&t.PoolWait, "pool-timeout", db.DefaultTimeouts.PoolWait, "how long a request waits for a free database connection before 503 with Retry-After ($"+f.variable("pool-timeout")+")")
	f.fs.BoolVar(&c.db.TransactionPooler, "transaction-pooler", false, "the database URL goes through a transaction-mode pooler such as PgBouncer: no prepared statements, session settings per transaction ($"+f.variable("transaction-pooler")+")")
	f.fs.StringVar(&c.db.DirectURL, "direct-database-url", "", "with --transaction-pooler: a direct (session) URL of the same role for LISTEN, so revocations arrive at once; without it they are polled every 5s ($"+f.variable("direct-database-url")+")")
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer, env func(string) (string, bool)) error {
	var c serveConfig
	f := newFlags("serve", "Run the API server.", stderr, env)
	serveFlags(f, &c)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	return serve(ctx, c, auth.KeySource{JWKSFile: c.jwksFile, JWKSURL: c.jwksURL, Issuer: c.issuer, UnknownKIDInterval: c.unknownKID}, log, nil)
}

// verifierOptions are the token rules of c, with keys from src.
func (c *serveConfig) verifierOptions(src auth.KeySource) auth.Options {
	var algs []string
	for _, a := range strings.Split(c.algorithms, ",") {
		if a = strings.TrimSpace(a); a != "" {
			algs = append(algs, a)
		}
	}
	cache := c.tokenCache
	if cache == 0 {
		cache = -1 // 0 on the command line means off; auth's zero value means the default
	}
	return auth.Options{
		Issuer: c.issuer, Audience: c.audience, MaxLifetime: c.tokenMaxLife,
		Algorithms: algs, RequireATJWT: c.requireATJWT, CacheSize: cache, Keys: src,
	}
}

func (c *serveConfig) validate() error {
	switch {
	case c.databaseURL == "":
		return errors.New("FIELDSEAL_DATABASE_URL is required: the URL of a login role that is a member of fieldseal_app")
	case c.issuer == "":
		return errors.New("FIELDSEAL_ISSUER is required: the iss of the tokens to accept")
	case c.audience == "":
		return errors.New("FIELDSEAL_AUDIENCE is required: the aud of the tokens to accept")
	case c.jwksURL != "" && c.jwksFile != "":
		return errors.New("FIELDSEAL_JWKS_URL and FIELDSEAL_JWKS_FILE are both set: choose one")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return errors.New("FIELDSEAL_TLS_CERT and FIELDSEAL_TLS_KEY go together: set both or neither")
	case c.unknownKID < time.Second:
		return errors.New("FIELDSEAL_JWKS_UNKNOWN_KID_INTERVAL must be at least 1s")
	case c.tokenCache < 0:
		return errors.New("FIELDSEAL_TOKEN_CACHE_SIZE must be 0 (off) or more")
	case c.maxBody < 1:
		return errors.New("FIELDSEAL_MAX_BODY_BYTES must be positive")
	case c.tokenMaxLife <= 0:
		return errors.New("FIELDSEAL_TOKEN_MAX_LIFETIME must be positive")
	case c.db.DirectURL != "" && !c.db.TransactionPooler:
		return errors.New("FIELDSEAL_DIRECT_DATABASE_URL is for FIELDSEAL_TRANSACTION_POOLER=true: without a pooler, fieldseal LISTENs on FIELDSEAL_DATABASE_URL")
	}
	if err := c.db.Timeouts.Validate(); err != nil {
		return fmt.Errorf("FIELDSEAL_REQUEST_TIMEOUT, FIELDSEAL_LONG_REQUEST_TIMEOUT, FIELDSEAL_LOCK_TIMEOUT, FIELDSEAL_POOL_TIMEOUT: %w", err)
	}
	if c.requireEnc && c.decryptionKey == "" {
		return errors.New("FIELDSEAL_TOKEN_REQUIRE_ENCRYPTION needs FIELDSEAL_TOKEN_DECRYPTION_KEY")
	}
	if err := c.verifierOptions(auth.KeySource{JWKSFile: c.jwksFile, JWKSURL: c.jwksURL, Issuer: c.issuer}).Validate(); err != nil {
		return fmt.Errorf("token settings: %w", err)
	}
	if err := c.throttle.Validate(); err != nil {
		return fmt.Errorf("FIELDSEAL_WRONG_KEY_LIMIT, FIELDSEAL_WRONG_KEY_SUBJECT_LIMIT, FIELDSEAL_WRONG_KEY_WINDOW: %w", err)
	}
	host, _, err := net.SplitHostPort(c.listen)
	if err != nil {
		return fmt.Errorf("FIELDSEAL_LISTEN: %q is not host:port", c.listen)
	}
	if c.tlsCert == "" && !c.trustProxyTLS && !auth.LoopbackHost(host) {
		return fmt.Errorf("FIELDSEAL_LISTEN %s is not a loopback address and no certificate is set: "+
			"set FIELDSEAL_TLS_CERT and FIELDSEAL_TLS_KEY, or FIELDSEAL_TRUST_PROXY_TLS=true if a TLS-terminating proxy sits in front", c.listen)
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("FIELDSEAL_LOG_LEVEL: %q is not debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// reloadDecryptionKeys is Decrypter.Reload for the SIGHUP handler.
func reloadDecryptionKeys(d *auth.Decrypter, log *slog.Logger) {
	if err := d.Reload(); err != nil {
		log.Error("FIELDSEAL_TOKEN_DECRYPTION_KEY not reloaded: the keys loaded before stay in use", "error", err.Error())
		return
	}
	log.Info("FIELDSEAL_TOKEN_DECRYPTION_KEY reloaded", "kids", strings.Join(d.KeyIDs(), ","))
}

// serve connects as the app role, refuses a role that could bypass
// row-level security, and serves until ctx ends, trusting tokens signed by
// keys from src. ready, if not nil, is called with the listening address.
func serve(ctx context.Context, c serveConfig, src auth.KeySource, log *slog.Logger, ready func(addr string)) error {
	metrics := newServerMetrics()
	src.OnRefresh = metrics.observeJWKS
	opts := c.verifierOptions(src)
	opts.OnRefuse = func(reason string) { metrics.tokenRefusals.WithLabelValues(reason).Inc() }
	if c.decryptionKey != "" {
		var err error
		if opts.Decrypter, err = auth.LoadDecrypter(c.decryptionKey, hsm.OpenRSA); err != nil {
			return fmt.Errorf("FIELDSEAL_TOKEN_DECRYPTION_KEY: %w", err)
		}
		opts.RequireEncryption = c.requireEnc
	}
	dbc := c.db
	dbc.URL, dbc.Throttle = c.databaseURL, c.throttle
	apiCtx, stopAPI := context.WithCancel(ctx)
	defer stopAPI()
	a, err := api.New(apiCtx, api.Config{
		Database: dbc, Tokens: opts, Log: log, MaxBody: c.maxBody,
		Metrics: metrics.handler(), Observe: metrics.observeRequest, OnAudit: metrics.observeAudit, OnAuditFailure: metrics.observeAuditFailure,
	})
	if err != nil {
		return err
	}
	defer a.Close()
	metrics.registerPool(a.Store.PoolStat)

	var certs *certReloader
	if c.tlsCert != "" {
		if certs, err = newCertReloader(c.tlsCert, c.tlsKey); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Long enough for a rotation's answer; an export sets its own
		// deadline for each write (handlers/export.go).
		WriteTimeout: c.db.Timeouts.Long + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if certs != nil {
		scheme = "https"
		srv.TLSConfig = certs.config()
	}
	if certs != nil || opts.Decrypter != nil {
		// SIGHUP reloads the TLS certificate and the token decryption
		// keys; a failed reload keeps what was loaded and says why.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					if certs != nil {
						certs.reloadLogged(log)
					}
					if opts.Decrypter != nil {
						reloadDecryptionKeys(opts.Decrypter, log)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	log.Info("serving", "address", scheme+"://"+ln.Addr().String())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "deadline", c.shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", c.shutdownTimeout, err)
	}
	log.Info("stopped")
	return nil
}

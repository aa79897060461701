// Package certs gives the daemons their TLS configuration: the configured
// certificate, or a self-signed one made once under state_dir so that the
// demo and tests have TLS without any set-up.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"postline/config"
	"postline/durable"
)

// Certificate is the listeners' certificate, replaced by Reload while
// they serve: each TLS handshake takes the one current at its start.
type Certificate struct {
	cur atomic.Pointer[tls.Certificate]
}

// ServerConfig returns the TLS settings for every postline listener:
// TLS 1.2 or newer with the configured or generated certificate, and
// the Certificate to reload it (SIGHUP), so a renewed certificate needs
// no restart.
func ServerConfig(cfg *config.Config) (*tls.Config, *Certificate, error) {
	c := &Certificate{}
	if err := c.Reload(cfg); err != nil {
		return nil, nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}, c, nil
}

// Reload reads the certificate and key named by cfg again. On an error
// the current certificate stays.
func (c *Certificate) Reload(cfg *config.Config) error {
	certFile, keyFile, generated := cfg.CertFiles()
	if generated {
		if err := EnsureSelfSigned(certFile, keyFile, cfg.Hostname); err != nil {
			return err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("certs: load %s and %s: %w (check tls.cert and tls.key in %s, and that the daemon's user may read them)", certFile, keyFile, err, cfg.File)
	}
	c.cur.Store(&pair)
	return nil
}

// EnsureSelfSigned creates a self-signed certificate for hostname at
// certFile/keyFile unless both exist. Each file appears atomically, so
// daemons starting together never read half of one.
func EnsureSelfSigned(certFile, keyFile, hostname string) error {
	if exists(certFile) && exists(keyFile) {
		return nil
	}
	if err := durable.MkdirAll(durable.OS{}, filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(hostname, time.Now())
	if err != nil {
		return err
	}
	// Key first: a certificate without its key would look complete.
	if err := writeAtomic(keyFile, keyPEM); err != nil {
		return err
	}
	return writeAtomic(certFile, certPEM)
}

func selfSigned(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"postline self-signed"}},
		DNSNames:     []string{hostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func writeAtomic(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	err := durable.Write(durable.OS{}, tmp, path, 0o600, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

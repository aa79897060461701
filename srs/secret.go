package srs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// secretSize is the secret's length: as long as HMAC-SHA1's block is
// not needed; 32 random bytes are beyond guessing.
const secretSize = 32

// LoadSecret reads the secret kept at path, or makes one there (mode
// 0600, flushed) the first time, so that addresses made before a
// restart are still accepted back after it.
func LoadSecret(path string) ([]byte, error) {
	secret, err := os.ReadFile(path)
	switch {
	case err == nil && len(secret) >= 16:
		return secret, nil
	case err == nil:
		return nil, fmt.Errorf("srs: secret %s holds %d bytes, fewer than 16: remove it to make a new one (addresses already sent stop working)", path, len(secret))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("srs: read secret: %w", err)
	}
	secret = make([]byte, secretSize)
	rand.Read(secret)
	if err := writeNew(path, secret); err != nil {
		if errors.Is(err, fs.ErrExist) { // made meanwhile by another process
			return LoadSecret(path)
		}
		return nil, fmt.Errorf("srs: make secret: %w", err)
	}
	return secret, nil
}

func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

package seal

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpensOnlyWithTheSameKeyAndRow(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KeySize)
	s, err := New(kek)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	secret := []byte("hmac key material")
	sealed := s.Seal(secret, []byte("row-1"))
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if again := s.Seal(secret, []byte("row-1")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one secret are equal: nonce reused")
	}
	got, err := s.Open(sealed, []byte("row-1"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	flipped := append([]byte{}, sealed...)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		s      *Sealer
		sealed []byte
		aad    string
	}{
		"another row":     {s, sealed, "row-2"},
		"another key":     {other, sealed, "row-1"},
		"a flipped bit":   {s, flipped, "row-1"},
		"a truncated box": {s, sealed[:10], "row-1"},
		"empty":           {s, nil, "row-1"},
	} {
		if _, err := tc.s.Open(tc.sealed, []byte(tc.aad)); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: opened (err %v)", name, err)
		}
	}
}

func TestParseKEK(t *testing.T) {
	for _, in := range []string{
		"q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA=",
		"q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA",
		" q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA=\n",
	} {
		if _, err := ParseKEK(in); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, in := range []string{"", "c2hvcnQ=", "!!!!"} {
		_, err := ParseKEK(in)
		if err == nil {
			t.Errorf("%q accepted", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
}

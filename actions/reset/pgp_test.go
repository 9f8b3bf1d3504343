package reset

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/gopenpgp/v2/crypto"
)

// Keys are generated once per test binary: RSA generation is slow under -race.
var (
	keysOnce sync.Once
	keys     map[string]*crypto.Key
	keysErr  error
)

func testKeys(t *testing.T) map[string]*crypto.Key {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]*crypto.Key{}
		for _, kt := range []struct {
			name string
			bits int
		}{{"x25519", 0}, {"rsa", 2048}} {
			k, err := crypto.GenerateKey("Jane Doe", "jdoe@example.com", kt.name, kt.bits)
			if err != nil {
				keysErr = err
				return
			}
			keys[kt.name] = k
		}
	})
	if keysErr != nil {
		t.Fatalf("generating keys: %v", keysErr)
	}
	return keys
}

func publicArmored(t *testing.T, k *crypto.Key) string {
	t.Helper()
	s, err := k.GetArmoredPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publicBase64(t *testing.T, k *crypto.Key) string {
	t.Helper()
	b, err := k.GetPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func wrap(s string, width int, sep string) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + sep)
		s = s[width:]
	}
	return b.String() + s
}

func TestParseKeyFormats(t *testing.T) {
	for name, k := range testKeys(t) {
		b64 := publicBase64(t, k)
		formats := map[string]string{
			"armored":                publicArmored(t, k),
			"armored, CRLF, padded":  "\n  " + strings.ReplaceAll(publicArmored(t, k), "\n", "\r\n") + "  \n",
			"base64 one line":        b64,
			"base64 wrapped":         " " + wrap(b64, 64, "\r\n") + "\n",
			"base64 with spaces":     wrap(b64, 76, " \t"),
			"base64 without padding": strings.TrimRight(b64, "="),
			"base64 of armored":      base64.StdEncoding.EncodeToString([]byte(publicArmored(t, k))),
		}
		for format, data := range formats {
			t.Run(name+"/"+format, func(t *testing.T) {
				got, info, err := ParseKey(data)
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if want := strings.ToUpper(k.GetFingerprint()); info.Fingerprint != want {
					t.Errorf("Fingerprint = %s, want %s", info.Fingerprint, want)
				}
				if got.IsPrivate() {
					t.Error("parsed key is private")
				}
				if !info.CanEncrypt || info.Expired || info.Revoked || !info.Expires.IsZero() {
					t.Errorf("info = %+v, want a usable key that never expires", info)
				}
				if len(info.UserIDs) != 1 || info.UserIDs[0] != "Jane Doe <jdoe@example.com>" {
					t.Errorf("UserIDs = %q", info.UserIDs)
				}
				if msg := CheckKey(info, time.Now()); msg != "" {
					t.Errorf("CheckKey = %q, want usable", msg)
				}
			})
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	k := testKeys(t)["x25519"]
	privArmored, err := k.Armor()
	if err != nil {
		t.Fatal(err)
	}
	privBin, err := k.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	pub1, _ := k.GetPublicKey()
	pub2, _ := testKeys(t)["rsa"].GetPublicKey()
	msg, err := Encrypt(k, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data, want string
	}{
		{"empty", "  \n", "no public GPG key"},
		{"not base64", "this is not a key!", "neither ASCII-armored nor valid base64"},
		{"base64 of junk", base64.StdEncoding.EncodeToString([]byte("hello world, no key here")), "not a binary OpenPGP public key"},
		{"armored private", privArmored, "private (secret) key"},
		{"binary private", base64.StdEncoding.EncodeToString(privBin), "private (secret) key"},
		{"two keys", base64.StdEncoding.EncodeToString(append(append([]byte{}, pub1...), pub2...)), "more than one key"},
		{"armored message", msg, "not a public key"},
		{"truncated armor", publicArmored(t, k)[:120], "cannot be read"},
		{"truncated binary", base64.StdEncoding.EncodeToString(pub1[:40]), "not a binary OpenPGP public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _, err := ParseKey(tt.data)
			if err == nil {
				t.Fatalf("ParseKey succeeded (%s), want error with %q", key.GetFingerprint(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKey error = %q, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "gopenpgp") {
				t.Errorf("error shows library internals: %q", err)
			}
		})
	}
}

// entityBuilder makes keys with go-crypto directly, for the states gopenpgp
// cannot generate.
func newEntity(t *testing.T, created time.Time, lifetime time.Duration) (*openpgp.Entity, *packet.Config) {
	t.Helper()
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	e, err := openpgp.NewEntity("Sam Smith", "", "ssmith@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, cfg
}

func serializePublic(t *testing.T, e *openpgp.Entity, armored bool) string {
	t.Helper()
	var bin bytes.Buffer
	if err := e.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	if !armored {
		return base64.StdEncoding.EncodeToString(bin.Bytes())
	}
	var out bytes.Buffer
	w, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bin.Bytes())
	w.Close()
	return out.String()
}

func TestCheckKey(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	tests := []struct {
		name  string
		build func(t *testing.T) *openpgp.Entity
		at    time.Time // when CheckKey is asked; zero = now
		want  string    // substring of CheckKey's message; "" = usable
		check func(t *testing.T, info KeyInfo)
	}{
		{
			name:  "usable, never expires",
			build: func(t *testing.T) *openpgp.Entity { e, _ := newEntity(t, now.Add(-time.Hour), 0); return e },
		},
		{
			name:  "expires next year",
			build: func(t *testing.T) *openpgp.Entity { e, _ := newEntity(t, now.Add(-day), 366*day); return e },
			check: func(t *testing.T, info KeyInfo) {
				if info.Expires.IsZero() || info.Expired {
					t.Errorf("info = %+v, want a future expiry", info)
				}
			},
		},
		{
			name:  "expires next year, checked in two years",
			build: func(t *testing.T) *openpgp.Entity { e, _ := newEntity(t, now.Add(-day), 366*day); return e },
			at:    now.Add(2 * 365 * day),
			want:  "expired on " + now.Add(-day).Add(366*day).UTC().Format("2006-01-02"),
		},
		{
			name: "expired",
			build: func(t *testing.T) *openpgp.Entity {
				e, _ := newEntity(t, now.Add(-30*day), 10*day)
				return e
			},
			want: "expired on " + now.Add(-20*day).UTC().Format("2006-01-02"),
			check: func(t *testing.T, info KeyInfo) {
				if !info.Expired {
					t.Errorf("Expired = false")
				}
			},
		},
		{
			name: "revoked",
			build: func(t *testing.T) *openpgp.Entity {
				e, cfg := newEntity(t, now.Add(-day), 0)
				cfg.Time = func() time.Time { return now.Add(-time.Hour) }
				if err := e.RevokeKey(packet.KeySuperseded, "replaced", cfg); err != nil {
					t.Fatal(err)
				}
				return e
			},
			want: "is revoked",
		},
		{
			name: "revoked and expired says revoked",
			build: func(t *testing.T) *openpgp.Entity {
				e, cfg := newEntity(t, now.Add(-30*day), day)
				if err := e.RevokeKey(packet.KeyCompromised, "lost", cfg); err != nil {
					t.Fatal(err)
				}
				return e
			},
			want: "is revoked",
		},
		{
			name: "sign-only",
			build: func(t *testing.T) *openpgp.Entity {
				e, _ := newEntity(t, now.Add(-time.Hour), 0)
				e.Subkeys = nil
				return e
			},
			want: "cannot encrypt",
		},
		{
			name: "encryption subkey revoked",
			build: func(t *testing.T) *openpgp.Entity {
				e, cfg := newEntity(t, now.Add(-day), 0)
				if err := e.RevokeSubkey(&e.Subkeys[0], packet.KeyRetired, "", cfg); err != nil {
					t.Fatal(err)
				}
				return e
			},
			want: "cannot encrypt",
		},
	}
	for _, tt := range tests {
		for _, armored := range []bool{false, true} {
			name := tt.name + "/base64"
			if armored {
				name = tt.name + "/armored"
			}
			t.Run(name, func(t *testing.T) {
				e := tt.build(t)
				key, info, err := ParseKey(serializePublic(t, e, armored))
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if want := strings.ToUpper(key.GetFingerprint()); info.Fingerprint != want {
					t.Errorf("Fingerprint = %s, want %s", info.Fingerprint, want)
				}
				at := tt.at
				if at.IsZero() {
					at = now
				}
				msg := CheckKey(info, at)
				switch {
				case tt.want == "" && msg != "":
					t.Errorf("CheckKey = %q, want usable", msg)
				case tt.want != "" && !strings.Contains(msg, tt.want):
					t.Errorf("CheckKey = %q, want %q", msg, tt.want)
				case tt.want != "" && !strings.Contains(msg, info.Fingerprint):
					t.Errorf("CheckKey = %q does not name the key", msg)
				}
				if tt.check != nil {
					tt.check(t, info)
				}
				// A key CheckKey rejects now must not be encryptable either.
				if tt.at.IsZero() && tt.want != "" {
					if _, err := Encrypt(key, []byte("pw")); err == nil {
						t.Error("Encrypt succeeded with a rejected key")
					}
				}
			})
		}
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	for name, k := range testKeys(t) {
		t.Run(name, func(t *testing.T) {
			pub, _, err := ParseKey(publicBase64(t, k))
			if err != nil {
				t.Fatal(err)
			}
			pw, err := Generate(DefaultPolicy(), 32)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(pw)
			armored, err := Encrypt(pub, pw)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if !bytes.Equal(pw, want) {
				t.Error("Encrypt changed its input")
			}
			if !strings.HasPrefix(armored, "-----BEGIN PGP MESSAGE-----") || strings.Contains(armored, string(pw)) {
				t.Fatalf("unexpected armored message:\n%s", armored)
			}
			if strings.Contains(armored, "Version:") || strings.Contains(armored, "Comment:") {
				t.Errorf("armor carries headers:\n%s", armored)
			}
			ring, err := crypto.NewKeyRing(k)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := crypto.NewPGPMessageFromArmored(armored)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ring.Decrypt(msg, nil, 0)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(plain.GetBinary(), want) {
				t.Fatal("round trip changed the password")
			}
		})
	}
	if _, err := Encrypt(nil, []byte("x")); err == nil {
		t.Error("Encrypt(nil key) succeeded")
	}
}

// gpgHome gives a throw-away GnuPG home and a function that runs gpg in it.
// When gpg is missing the test is skipped, except in CI, where it fails.
func gpgHome(t *testing.T) func(stdin []byte, args ...string) []byte {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gpg is not installed, and CI=true: install GnuPG (apt-get install gnupg): %v", err)
		}
		t.Skipf("gpg not installed: %v", err)
	}
	// A short path: gpg-agent's socket path must fit in sun_path.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.Bytes()
	}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--homedir", home, "--kill", "all")
		kill.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = kill.Run()
		os.RemoveAll(home)
	})
	return run
}

// TestEncryptDecryptWithGPG checks that what Encrypt writes is what a user's
// `gpg -d` reads, for keys made by gopenpgp and by GnuPG itself (exported as
// app-interface wants it: gpg --export | base64 -w0).
func TestEncryptDecryptWithGPG(t *testing.T) {
	type keyCase struct {
		name   string
		pubKey func(t *testing.T, gpg func([]byte, ...string) []byte) string
	}
	var cases []keyCase
	for name, k := range testKeys(t) {
		cases = append(cases, keyCase{"gopenpgp " + name, func(t *testing.T, gpg func([]byte, ...string) []byte) string {
			priv, err := k.Armor()
			if err != nil {
				t.Fatal(err)
			}
			gpg([]byte(priv), "--import")
			return publicBase64(t, k)
		}})
	}
	for _, algo := range []string{"future-default", "rsa3072"} {
		cases = append(cases, keyCase{"gnupg " + algo, func(t *testing.T, gpg func([]byte, ...string) []byte) string {
			uid := "Real User <real@example.com>"
			gpg(nil, "--quick-gen-key", uid, algo, "default", "1y")
			if algo == "rsa3072" { // rsa3072 makes a primary key only: add the encryption subkey
				fpr := fingerprintOf(t, gpg(nil, "--with-colons", "--list-keys", uid))
				gpg(nil, "--quick-add-key", fpr, "rsa3072", "encr", "1y")
			}
			return base64.StdEncoding.EncodeToString(gpg(nil, "--export", uid))
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gpg := gpgHome(t)
			key, info, err := ParseKey(tc.pubKey(t, gpg))
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if msg := CheckKey(info, time.Now()); msg != "" {
				t.Fatalf("CheckKey: %s", msg)
			}
			pw, err := Generate(DefaultPolicy(), 0)
			if err != nil {
				t.Fatal(err)
			}
			armored, err := Encrypt(key, pw)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			file := filepath.Join(t.TempDir(), "password.asc")
			if err := os.WriteFile(file, []byte(armored), 0o600); err != nil {
				t.Fatal(err)
			}
			got := gpg(nil, "--decrypt", file)
			if !bytes.Equal(got, pw) {
				t.Fatalf("gpg -d gave %d bytes, want the %d-byte password", len(got), len(pw))
			}
		})
	}
}

func fingerprintOf(t *testing.T, colons []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(colons), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint in:\n%s", colons)
	return ""
}

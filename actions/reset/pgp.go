package reset

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/gopenpgp/v2/crypto"
)

// KeyInfo describes a user's public key, for the checks made before a reset
// is approved and for the thread ("mailed, encrypted to key ...").
type KeyInfo struct {
	// Fingerprint is the primary key's fingerprint, upper-case hex.
	Fingerprint string
	// Expires is when the primary key expires; zero means never.
	Expires time.Time
	// CanEncrypt says the key has a non-revoked, unexpired key (sub)key
	// flagged for encryption, as of parsing. It does not look at the primary
	// key's own expiry or revocation: Expired and Revoked say that.
	CanEncrypt bool
	// Expired and Revoked are as of parsing; CheckKey re-checks the expiry
	// against its own clock.
	Expired bool
	Revoked bool
	// UserIDs are the key's user IDs ("Name <mail>"), sorted.
	UserIDs []string
}

const (
	armorPublicHeader  = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	armorPrivateHeader = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
	armorAnyHeader     = "-----BEGIN PGP "
)

// ParseKey reads one public key, given either ASCII-armored or as base64 of
// the binary key (app-interface's public_gpg_key; white space and line breaks
// are ignored). Errors are written for the person whose key it is: they say
// what is wrong with the data and carry nothing secret.
func ParseKey(data string) (*crypto.Key, KeyInfo, error) {
	data = strings.TrimSpace(data)
	if data == "" {
		return nil, KeyInfo{}, errors.New("no public GPG key was given")
	}
	var (
		key *crypto.Key
		err error
	)
	if strings.Contains(data, armorAnyHeader) {
		key, err = parseArmored(data)
	} else {
		key, err = parseBase64(data)
	}
	if err != nil {
		return nil, KeyInfo{}, err
	}
	if key.IsPrivate() {
		return nil, KeyInfo{}, errors.New("this is a private (secret) key; give the public key only (gpg --export, not --export-secret-keys), and consider this private key exposed")
	}
	info, err := describe(key.GetEntity(), time.Now())
	if err != nil {
		return nil, KeyInfo{}, err
	}
	return key, info, nil
}

func parseArmored(data string) (*crypto.Key, error) {
	if strings.Contains(data, armorPrivateHeader) {
		return nil, errors.New("this is a private (secret) key block; give the public key only (gpg --armor --export), and consider this private key exposed")
	}
	if !strings.Contains(data, armorPublicHeader) {
		return nil, errors.New("the armored block is not a public key (it should start with " + armorPublicHeader + ")")
	}
	key, err := crypto.NewKeyFromArmored(data)
	if err != nil {
		return nil, fmt.Errorf("the armored public key cannot be read (%s); export it again with gpg --armor --export", keyErrorReason(err))
	}
	return key, nil
}

func parseBase64(data string) (*crypto.Key, error) {
	compact := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, data)
	bin, err := base64.StdEncoding.DecodeString(compact)
	if err != nil {
		bin, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(compact, "="))
	}
	if err != nil {
		return nil, errors.New("the public GPG key is neither ASCII-armored nor valid base64 (app-interface wants the output of gpg --export KEYID | base64 -w0)")
	}
	if bytes.Contains(bin, []byte(armorAnyHeader)) { // base64 of an armored key
		return parseArmored(string(bin))
	}
	key, err := crypto.NewKey(bin)
	if err != nil {
		return nil, fmt.Errorf("the base64 data is not a binary OpenPGP public key (%s); produce it with gpg --export KEYID | base64 -w0", keyErrorReason(err))
	}
	return key, nil
}

// keyErrorReason turns a library error into a short, user-readable reason.
func keyErrorReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "too many entities"):
		return "it holds more than one key; give exactly one"
	case strings.Contains(msg, "does not contain any entity"):
		return "it holds no key"
	}
	// Keep the innermost library message, without the gopenpgp prefixes.
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return strings.TrimPrefix(msg, "openpgp: ")
}

func describe(e *openpgp.Entity, now time.Time) (KeyInfo, error) {
	sig, ident := e.PrimarySelfSignature()
	if sig == nil {
		return KeyInfo{}, errors.New("the public key has no valid self-signed user ID")
	}
	info := KeyInfo{
		Fingerprint: strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint)),
		Revoked:     e.Revoked(now) || (ident != nil && ident.Revoked(now)),
		Expired:     e.PrimaryKey.KeyExpired(sig, now) || sig.SigExpired(now),
		CanEncrypt:  canEncrypt(e, sig, now),
	}
	if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
		info.Expires = e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC()
	}
	if sig.SigLifetimeSecs != nil && *sig.SigLifetimeSecs != 0 {
		sigExp := sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs) * time.Second).UTC()
		if info.Expires.IsZero() || sigExp.Before(info.Expires) {
			info.Expires = sigExp
		}
	}
	for name := range e.Identities {
		info.UserIDs = append(info.UserIDs, name)
	}
	sort.Strings(info.UserIDs)
	return info, nil
}

// canEncrypt mirrors openpgp.Entity.EncryptionKey without the checks on the
// primary key's own validity, so that a sign-only key is told apart from an
// expired or revoked one.
func canEncrypt(e *openpgp.Entity, primarySig *packet.Signature, now time.Time) bool {
	for _, sk := range e.Subkeys {
		if sk.Sig != nil && sk.Sig.FlagsValid && sk.Sig.FlagEncryptCommunications &&
			sk.PublicKey.PubKeyAlgo.CanEncrypt() &&
			!sk.PublicKey.KeyExpired(sk.Sig, now) && !sk.Sig.SigExpired(now) && !sk.Revoked(now) {
			return true
		}
	}
	return primarySig.FlagsValid && primarySig.FlagEncryptCommunications && e.PrimaryKey.PubKeyAlgo.CanEncrypt()
}

// CheckKey says whether a password can be encrypted to the key at now: ""
// if so, otherwise a message for the user that names the problem and the fix.
func CheckKey(info KeyInfo, now time.Time) string {
	fp := info.Fingerprint
	switch {
	case info.Revoked:
		return fmt.Sprintf("The GPG key %s is revoked. Create a new key pair and publish the new public key (in app-interface, public_gpg_key in your user file).", fp)
	case info.Expired || (!info.Expires.IsZero() && !now.Before(info.Expires)):
		when := "already"
		if !info.Expires.IsZero() {
			when = "on " + info.Expires.UTC().Format("2006-01-02 15:04 MST")
		}
		return fmt.Sprintf("The GPG key %s expired %s. Extend it (gpg --quick-set-expire %s 1y, and the same with '*' after 1y for its subkeys) and publish the updated public key.", fp, when, fp)
	case !info.CanEncrypt:
		return fmt.Sprintf("The GPG key %s cannot encrypt: it has no valid encryption subkey (it is sign-only, or its encryption subkey expired or was revoked). Add one (gpg --quick-add-key %s default encr) and publish the updated public key.", fp, fp)
	}
	return ""
}

// Encrypt encrypts plaintext to key and returns an ASCII-armored OpenPGP
// message that `gpg -d` decrypts. The message is not signed. plaintext is
// not copied or kept; the caller may zero it afterwards.
func Encrypt(key *crypto.Key, plaintext []byte) (string, error) {
	if key == nil {
		return "", errors.New("encrypting: no key")
	}
	ring, err := crypto.NewKeyRing(key)
	if err != nil {
		return "", fmt.Errorf("encrypting: building key ring: %w", err)
	}
	msg := &crypto.PlainMessage{Data: plaintext, Time: uint32(crypto.GetUnixTime())}
	enc, err := ring.Encrypt(msg, nil)
	msg.Data = nil
	if err != nil {
		return "", fmt.Errorf("encrypting to key %X: %w", key.GetEntity().PrimaryKey.Fingerprint, err)
	}
	armored, err := enc.GetArmoredWithCustomHeaders("", "")
	if err != nil {
		return "", fmt.Errorf("armoring encrypted message: %w", err)
	}
	return armored, nil
}

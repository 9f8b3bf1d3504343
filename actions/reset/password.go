// Package reset holds the Slack-free building blocks of the in-place console
// password reset: password generation against an IAM account password policy,
// and OpenPGP key checks and encryption of the new password to the user's key.
//
// Nothing in this package logs, stores or formats a password: generated
// passwords are returned as []byte so that the caller can zero them (Zero)
// once they have been set in IAM and encrypted.
package reset

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/iam"
)

const (
	// MinGeneratedLength is the shortest password Generate produces, whatever
	// the policy says.
	MinGeneratedLength = 20
	// MaxPasswordLength is the longest password IAM accepts.
	MaxPasswordLength = 128

	upperChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerChars  = "abcdefghijklmnopqrstuvwxyz"
	digitChars  = "0123456789"
	symbolChars = "!@#$%^&*()_+-=[]{}|'" // the symbols IAM accepts in a password policy
	alphabet    = upperChars + lowerChars + digitChars + symbolChars
)

// Policy is the part of an IAM account password policy that decides what a
// new password must look like.
type Policy struct {
	MinLength        int
	RequireSymbols   bool
	RequireNumbers   bool
	RequireUppercase bool
	RequireLowercase bool
}

// DefaultPolicy is what applies when the account has no password policy
// (GetAccountPasswordPolicy answers NoSuchEntity): AWS asks for at least 8
// characters from at least three of the four classes; requiring all four
// classes satisfies that.
func DefaultPolicy() Policy {
	return Policy{MinLength: 8, RequireSymbols: true, RequireNumbers: true, RequireUppercase: true, RequireLowercase: true}
}

// PolicyFrom converts a GetAccountPasswordPolicy answer. A nil answer, or one
// without a policy, gives DefaultPolicy.
func PolicyFrom(out *iam.GetAccountPasswordPolicyOutput) Policy {
	if out == nil || out.PasswordPolicy == nil {
		return DefaultPolicy()
	}
	pp := out.PasswordPolicy
	p := Policy{
		RequireSymbols:   pp.RequireSymbols,
		RequireNumbers:   pp.RequireNumbers,
		RequireUppercase: pp.RequireUppercaseCharacters,
		RequireLowercase: pp.RequireLowercaseCharacters,
	}
	if pp.MinimumPasswordLength != nil {
		p.MinLength = int(*pp.MinimumPasswordLength)
	}
	return p
}

// Generate returns a new random password that satisfies p, of length
// max(p.MinLength, minLen, MinGeneratedLength). It always holds at least one
// upper-case letter, one lower-case letter, one digit and one IAM symbol,
// whatever p requires, so it also meets AWS's default policy. Every character
// is drawn uniformly from crypto/rand, and the result is shuffled with
// crypto/rand. The caller owns the returned slice and should Zero it.
func Generate(p Policy, minLen int) ([]byte, error) {
	return generate(rand.Reader, p, minLen)
}

func generate(r io.Reader, p Policy, minLen int) ([]byte, error) {
	n := max(p.MinLength, minLen, MinGeneratedLength)
	if n > MaxPasswordLength {
		return nil, fmt.Errorf("generating password: a length of %d is needed but IAM accepts at most %d characters", n, MaxPasswordLength)
	}
	src := &randSource{r: r}
	defer src.wipe()

	pw := make([]byte, n)
	// One of each class first, the rest from the whole alphabet, then shuffle
	// so that the guaranteed characters are not at predictable positions.
	classes := [...]string{upperChars, lowerChars, digitChars, symbolChars}
	for i := range pw {
		set := alphabet
		if i < len(classes) {
			set = classes[i]
		}
		k, err := src.intn(len(set))
		if err != nil {
			Zero(pw)
			return nil, fmt.Errorf("generating password: %w", err)
		}
		pw[i] = set[k]
	}
	for i := len(pw) - 1; i > 0; i-- { // Fisher-Yates
		j, err := src.intn(i + 1)
		if err != nil {
			Zero(pw)
			return nil, fmt.Errorf("shuffling password: %w", err)
		}
		pw[i], pw[j] = pw[j], pw[i]
	}
	if err := Meets(p, pw); err != nil { // cannot happen; never hand out a bad one
		Zero(pw)
		return nil, fmt.Errorf("generated password does not meet the policy: %w", err)
	}
	return pw, nil
}

// Meets reports whether pw satisfies p and uses only characters that
// Generate would use. The error never contains the password.
func Meets(p Policy, pw []byte) error {
	if len(pw) < p.MinLength {
		return fmt.Errorf("password has %d characters, the policy asks for at least %d", len(pw), p.MinLength)
	}
	if len(pw) > MaxPasswordLength {
		return fmt.Errorf("password has %d characters, IAM accepts at most %d", len(pw), MaxPasswordLength)
	}
	var upper, lower, digit, symbol bool
	for i, c := range pw {
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case '0' <= c && c <= '9':
			digit = true
		case isSymbol(c):
			symbol = true
		default:
			return fmt.Errorf("password has a character outside the allowed set at position %d", i)
		}
	}
	var missing []string
	if p.RequireUppercase && !upper {
		missing = append(missing, "an upper-case letter")
	}
	if p.RequireLowercase && !lower {
		missing = append(missing, "a lower-case letter")
	}
	if p.RequireNumbers && !digit {
		missing = append(missing, "a digit")
	}
	if p.RequireSymbols && !symbol {
		missing = append(missing, "a symbol")
	}
	if len(missing) > 0 {
		return fmt.Errorf("password lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// Zero overwrites b with zeros.
func Zero(b []byte) {
	clear(b)
}

func isSymbol(c byte) bool {
	return strings.IndexByte(symbolChars, c) >= 0
}

// randSource turns random bytes into uniform integers in [0, n) for n <= 256
// by rejection sampling, reading from r in blocks.
type randSource struct {
	r   io.Reader
	buf [64]byte
	pos int
	end int
}

var errShortRandom = errors.New("random source returned no data")

func (s *randSource) intn(n int) (int, error) {
	if n <= 0 || n > 256 {
		return 0, fmt.Errorf("random index range %d out of bounds", n)
	}
	// Accept bytes below the largest multiple of n that fits in a byte, so
	// that every residue is equally likely.
	limit := 256 - 256%n
	for {
		if s.pos == s.end {
			k, err := io.ReadFull(s.r, s.buf[:])
			if err != nil && k == 0 {
				if errors.Is(err, io.EOF) {
					err = errShortRandom
				}
				return 0, fmt.Errorf("reading random bytes: %w", err)
			}
			s.pos, s.end = 0, k
		}
		b := int(s.buf[s.pos])
		s.buf[s.pos] = 0
		s.pos++
		if b < limit {
			return b % n, nil
		}
	}
}

func (s *randSource) wipe() { clear(s.buf[:]) }

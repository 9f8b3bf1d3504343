package reset

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

func TestPolicyFrom(t *testing.T) {
	tests := []struct {
		name string
		out  *iam.GetAccountPasswordPolicyOutput
		want Policy
	}{
		{"nil output", nil, DefaultPolicy()},
		{"no policy", &iam.GetAccountPasswordPolicyOutput{}, DefaultPolicy()},
		{"full", &iam.GetAccountPasswordPolicyOutput{PasswordPolicy: &types.PasswordPolicy{
			MinimumPasswordLength: aws.Int32(14), RequireSymbols: true, RequireNumbers: true,
			RequireUppercaseCharacters: true, RequireLowercaseCharacters: false,
			PasswordReusePrevention: aws.Int32(24),
		}}, Policy{MinLength: 14, RequireSymbols: true, RequireNumbers: true, RequireUppercase: true}},
		{"no minimum", &iam.GetAccountPasswordPolicyOutput{PasswordPolicy: &types.PasswordPolicy{
			RequireLowercaseCharacters: true,
		}}, Policy{RequireLowercase: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PolicyFrom(tt.out); got != tt.want {
				t.Errorf("PolicyFrom = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDefaultPolicyRequiresThreeOfFour(t *testing.T) {
	p := DefaultPolicy()
	n := 0
	for _, b := range []bool{p.RequireSymbols, p.RequireNumbers, p.RequireUppercase, p.RequireLowercase} {
		if b {
			n++
		}
	}
	if p.MinLength < 8 || n < 3 {
		t.Fatalf("DefaultPolicy = %+v, want >= 8 chars and >= 3 classes", p)
	}
}

func TestGenerateLength(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		minLen  int
		want    int
		wantErr bool
	}{
		{"zero policy", Policy{}, 0, 20, false},
		{"default policy", DefaultPolicy(), 0, 20, false},
		{"policy longer than floor", Policy{MinLength: 32}, 0, 32, false},
		{"caller asks for more", Policy{MinLength: 14}, 40, 40, false},
		{"caller asks for less", Policy{MinLength: 24}, 10, 24, false},
		{"IAM maximum", Policy{MinLength: 128}, 0, 128, false},
		{"policy over maximum", Policy{MinLength: 129}, 0, 0, true},
		{"caller over maximum", Policy{}, 200, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pw, err := Generate(tt.policy, tt.minLen)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Generate = %d chars, want error", len(pw))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pw) != tt.want {
				t.Errorf("len = %d, want %d", len(pw), tt.want)
			}
			if err := Meets(tt.policy, pw); err != nil {
				t.Errorf("Meets: %v", err)
			}
			if err := Meets(DefaultPolicy(), pw); err != nil {
				t.Errorf("Meets(default): %v", err)
			}
		})
	}
}

// TestGenerateDistribution generates 10,000 passwords under a strict policy
// and checks each one, then checks that the characters are spread as the
// algorithm says: one forced character per class plus uniform picks from
// the whole alphabet, in shuffled positions.
func TestGenerateDistribution(t *testing.T) {
	const n, length = 10000, 32
	strict := Policy{MinLength: length, RequireSymbols: true, RequireNumbers: true, RequireUppercase: true, RequireLowercase: true}
	counts := map[byte]int{}
	firstUpper, lastSymbol := 0, 0
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		pw, err := Generate(strict, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != length {
			t.Fatalf("len = %d, want %d", len(pw), length)
		}
		if err := Meets(strict, pw); err != nil {
			t.Fatalf("password %d: %v", i, err)
		}
		for _, c := range pw {
			if strings.IndexByte(alphabet, c) < 0 {
				t.Fatalf("character %q outside the alphabet", c)
			}
			counts[c]++
		}
		if strings.IndexByte(upperChars, pw[0]) >= 0 {
			firstUpper++
		}
		if strings.IndexByte(symbolChars, pw[length-1]) >= 0 {
			lastSymbol++
		}
		seen[string(pw)] = true
		Zero(pw)
	}
	if len(seen) != n {
		t.Errorf("%d distinct passwords out of %d", len(seen), n)
	}

	// Chi-square against the exact expected frequencies.
	free := float64(length - 4)
	chi2 := 0.0
	for _, class := range []string{upperChars, lowerChars, digitChars, symbolChars} {
		for i := 0; i < len(class); i++ {
			c := class[i]
			if counts[c] == 0 {
				t.Errorf("character %q never appeared", c)
			}
			exp := n * (1/float64(len(class)) + free/float64(len(alphabet)))
			d := float64(counts[c]) - exp
			chi2 += d * d / exp
		}
	}
	// 81 degrees of freedom: the 1e-6 upper tail starts near 150.
	if chi2 > 160 {
		t.Errorf("chi-square = %.1f over %d characters: distribution looks biased", chi2, len(alphabet))
	}
	t.Logf("chi-square = %.1f (81 degrees of freedom)", chi2)

	// Shuffling: the forced characters must not stay at the front.
	classShare := func(size int) float64 { return (1 + free*float64(size)/float64(len(alphabet))) / length }
	for _, c := range []struct {
		name string
		got  int
		want float64
	}{
		{"upper-case at position 0", firstUpper, classShare(len(upperChars))},
		{"symbol at last position", lastSymbol, classShare(len(symbolChars))},
	} {
		if got := float64(c.got) / n; got < c.want-0.03 || got > c.want+0.03 {
			t.Errorf("%s: share %.3f, want about %.3f", c.name, got, c.want)
		}
	}
}

// TestIntnUnbiased feeds every byte value once and checks that every
// residue comes out exactly equally often.
func TestIntnUnbiased(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, n := range []int{1, 2, 3, 10, 20, 26, 82, 127, 128, 256} {
		src := &randSource{r: bytes.NewReader(all)}
		got := make([]int, n)
		for {
			k, err := src.intn(n)
			if err != nil {
				break
			}
			got[k]++
		}
		want := (256 - 256%n) / n
		for k, c := range got {
			if c != want {
				t.Errorf("n=%d: residue %d seen %d times, want %d", n, k, c, want)
				break
			}
		}
	}
	if _, err := (&randSource{r: bytes.NewReader(all)}).intn(257); err == nil {
		t.Error("intn(257) did not fail")
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestGenerateRandomFailure(t *testing.T) {
	for _, r := range []io.Reader{failingReader{errors.New("entropy gone")}, bytes.NewReader(nil), bytes.NewReader(make([]byte, 10))} {
		if pw, err := generate(r, DefaultPolicy(), 0); err == nil {
			t.Errorf("generate with a failing reader = %d chars, want error", len(pw))
		}
	}
}

func TestMeets(t *testing.T) {
	all := Policy{MinLength: 8, RequireSymbols: true, RequireNumbers: true, RequireUppercase: true, RequireLowercase: true}
	tests := []struct {
		name    string
		policy  Policy
		pw      string
		wantErr string
	}{
		{"ok", all, "Abcdef1!", ""},
		{"every symbol accepted", Policy{}, symbolChars, ""},
		{"too short", all, "Abc1!", "at least 8"},
		{"too long", Policy{}, strings.Repeat("a", 129), "at most 128"},
		{"no upper", all, "abcdef1!", "upper-case"},
		{"no lower", all, "ABCDEF1!", "lower-case"},
		{"no digit", all, "Abcdefg!", "digit"},
		{"no symbol", all, "Abcdefg1", "symbol"},
		{"symbol not required", Policy{MinLength: 8, RequireNumbers: true}, "abcdefg1", ""},
		{"space", Policy{}, "Abc def1!", "outside the allowed set"},
		{"symbol IAM rejects", Policy{}, "Abcdef1<", "outside the allowed set"},
		{"non-ASCII", Policy{}, "Abcdéf1!", "outside the allowed set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Meets(tt.policy, []byte(tt.pw))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Meets: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Meets = nil, want error with %q", tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Meets = %v, want %q", err, tt.wantErr)
			case err != nil && len(tt.pw) >= 5 && strings.Contains(err.Error(), tt.pw):
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestZero(t *testing.T) {
	b := []byte("secret")
	Zero(b)
	if !bytes.Equal(b, make([]byte, 6)) {
		t.Fatalf("Zero left %q", b)
	}
}

package appinterface

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cut removes each of lines (whole lines, with their "\n") from s, once.
func cut(t *testing.T, s string, lines ...string) string {
	t.Helper()
	for _, l := range lines {
		i := strings.Index(s, l+"\n")
		if i < 0 || (i > 0 && s[i-1] != '\n') {
			t.Fatalf("test bug: line %q not in input", l)
		}
		s = s[:i] + s[i+len(l)+1:]
	}
	return s
}

func TestRemoveRoleRefs(t *testing.T) {
	const (
		lOsioDev  = "- $ref: /teams/devtools/roles/osio-dev.yml"
		lOsio     = "- $ref: /teams/devtools/roles/osio.yml # production console"
		lReadonly = "- $ref: /teams/app-sre/roles/app-sre-readonly.yml"
		lData     = `- {$ref: "/teams/devtools/roles/osio-data.yml"}`
		lViewer   = "- $ref: '/teams/insights/roles/viewer.yml'"
	)
	tests := []struct {
		name    string
		refs    []string
		want    string
		removed []Removed
	}{
		{
			name:    "one ref with a trailing comment",
			refs:    []string{refOsio},
			want:    cut(t, userFile, lOsio),
			removed: []Removed{{Ref: refOsio, Index: 1, Line: lOsio + "\n", Below: 2, After: refOsioDev, Before: refReadonly}},
		},
		{
			name:    "first item, below a comment",
			refs:    []string{refOsioDev},
			want:    cut(t, userFile, lOsioDev),
			removed: []Removed{{Ref: refOsioDev, Index: 0, Line: lOsioDev + "\n", Before: refOsio}},
		},
		{
			name: "two adjacent items",
			refs: []string{refOsioDev, refOsio},
			want: cut(t, userFile, lOsioDev, lOsio),
			removed: []Removed{
				{Ref: refOsioDev, Index: 0, Line: lOsioDev + "\n", Below: 2, Before: refReadonly},
				{Ref: refOsio, Index: 1, Line: lOsio + "\n", Below: 2, After: refOsioDev, Before: refReadonly},
			},
		},
		{
			name:    "flow form with a double-quoted ref",
			refs:    []string{refData},
			want:    cut(t, userFile, lData),
			removed: []Removed{{Ref: refData, Index: 3, Line: lData + "\n", After: refReadonly, Before: refViewer}},
		},
		{
			name:    "last item, single-quoted, before comments and the next key",
			refs:    []string{refViewer},
			want:    cut(t, userFile, lViewer),
			removed: []Removed{{Ref: refViewer, Index: 4, Line: lViewer + "\n", Below: 2, After: refData}},
		},
		{
			name: "all of them, plus refs the file does not have",
			refs: append([]string{"/teams/x/roles/absent.yml"}, userRefs...),
			want: cut(t, userFile, lOsioDev, lOsio, lReadonly, lData, lViewer),
			removed: []Removed{
				{Ref: refOsioDev, Index: 0, Line: lOsioDev + "\n", Below: 4},
				{Ref: refOsio, Index: 1, Line: lOsio + "\n", Below: 4, After: refOsioDev},
				{Ref: refReadonly, Index: 2, Line: lReadonly + "\n", Below: 2, After: refOsio},
				{Ref: refData, Index: 3, Line: lData + "\n", Below: 2, After: refReadonly},
				{Ref: refViewer, Index: 4, Line: lViewer + "\n", Below: 2, After: refData},
			},
		},
		{
			name: "no match",
			refs: []string{"/teams/x/roles/absent.yml"},
			want: userFile,
		},
		{
			name: "no refs",
			want: userFile,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, removed, err := RemoveRoleRefs([]byte(userFile), tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", out, tc.want)
			}
			if !reflect.DeepEqual(removed, tc.removed) {
				t.Errorf("removed = %#v\nwant      %#v", removed, tc.removed)
			}
			back, skipped, err := RestoreRoleRefs(out, removed)
			if err != nil {
				t.Fatal(err)
			}
			if string(back) != userFile {
				t.Errorf("restore did not give the original back:\n%s", back)
			}
			if len(skipped) != 0 {
				t.Errorf("skipped = %q", skipped)
			}
		})
	}
}

// TestRoundTripAllSubsets removes every subset of roles from several files
// and checks that restoring gives the original bytes back and that the
// removal changed exactly the removed lines.
func TestRoundTripAllSubsets(t *testing.T) {
	files := map[string]string{
		"realistic": userFile,
		"no final newline": "$schema: /access/user-1.yml\nname: A\norg_username: a\nroles:\n" +
			"- $ref: /r/one.yml\n- $ref: /r/two.yml\n\n# three\n- $ref: /r/three.yml",
		"CRLF": strings.ReplaceAll(userFile, "\n", "\r\n"),
		"indented list, roles last, trailing comments": "name: B\norg_username: b\nroles:\n" +
			"  # first\n  - $ref: /r/one.yml\n\n  - $ref: /r/two.yml\n  # about three\n  - $ref: /r/three.yml\n# bye\n\n",
		"dash alone on its line":             "org_username: c\nroles:\n-\n  $ref: /r/one.yml\n- $ref: /r/two.yml\n-   $ref: /r/three.yml\nname: C\n",
		"items that are not plain refs stay": "org_username: d\nroles:\n- $ref: /r/one.yml\n  note: keep me\n- $ref: /r/two.yml\n- /r/plain.yml\n- $ref: /r/three.yml\n",
	}
	all := []string{refOsioDev, refOsio, refReadonly, refData, refViewer, "/r/one.yml", "/r/two.yml", "/r/three.yml"}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			present, err := roleRefs([]byte(file))
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, r := range all {
				if slices.Contains(present, r) {
					refs = append(refs, r)
				}
			}
			for mask := 1; mask < 1<<len(refs); mask++ {
				var sub []string
				for i, r := range refs {
					if mask&(1<<i) != 0 {
						sub = append(sub, r)
					}
				}
				out, removed, err := RemoveRoleRefs([]byte(file), sub)
				if err != nil {
					t.Fatalf("%q: %v", sub, err)
				}
				// Removing is deleting the removed lines and nothing else.
				wantOut := file
				for i := len(removed) - 1; i >= 0; i-- {
					wantOut = strings.Replace(wantOut, removed[i].Line, "", 1)
				}
				if !strings.HasSuffix(file, "\n") && len(removed) > 0 && strings.HasSuffix(file, removed[len(removed)-1].Line) {
					wantOut = strings.TrimSuffix(strings.TrimSuffix(wantOut, "\n"), "\r")
				}
				if string(out) != wantOut {
					t.Fatalf("%q: removal changed more than the lines:\n%q\nwant\n%q", sub, out, wantOut)
				}
				if len(removed) != len(sub) {
					t.Fatalf("%q: removed %d", sub, len(removed))
				}
				// The checkpoint survives JSON.
				js, _ := json.Marshal(removed)
				var back []Removed
				if err := json.Unmarshal(js, &back); err != nil {
					t.Fatal(err)
				}
				restored, skipped, err := RestoreRoleRefs(out, back)
				if err != nil {
					t.Fatalf("%q: %v", sub, err)
				}
				if string(restored) != file {
					t.Fatalf("%q: round trip differs:\n%q\nwant\n%q", sub, restored, file)
				}
				if len(skipped) > 0 {
					t.Fatalf("%q: skipped %q", sub, skipped)
				}
				// Restoring again changes nothing and skips everything.
				again, skipped, err := RestoreRoleRefs(restored, back)
				if err != nil || string(again) != file || len(skipped) != len(sub) {
					t.Fatalf("%q: second restore: err %v, skipped %q, changed %v", sub, err, skipped, string(again) != file)
				}
			}
		})
	}
}

func TestRemoveRoleRefsRepeatedRef(t *testing.T) {
	file := "org_username: e\nroles:\n- $ref: /r/a.yml\n- $ref: /r/b.yml\n- $ref: /r/a.yml\n"
	out, removed, err := RemoveRoleRefs([]byte(file), []string{"/r/a.yml"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "org_username: e\nroles:\n- $ref: /r/b.yml\n" || len(removed) != 2 {
		t.Fatalf("out %q removed %v", out, removed)
	}
	back, _, err := RestoreRoleRefs(out, removed)
	if err != nil || string(back) != file {
		t.Fatalf("restore: %v %q", err, back)
	}
}

func TestRemoveRoleRefsErrors(t *testing.T) {
	tests := []struct {
		name, file string
		wantErr    string
	}{
		{"flow list", "roles: [{$ref: /r/a.yml}, {$ref: /r/b.yml}]\n", "flow sequence"},
		{"roles not a list", "roles:\n  a: b\n", "not a list"},
		{"not YAML", "roles: [\n", "parsing YAML"},
		{"not a mapping", "- $ref: /r/a.yml\n", "not a YAML mapping"},
		{"two documents", "roles:\n- $ref: /r/a.yml\n---\nname: x\n", "more than one"},
		{"duplicate key", "roles:\n- $ref: /r/a.yml\nroles:\n- $ref: /r/b.yml\n", ""},
		{"lone CR", "name: a\rroles:\n- $ref: /r/a.yml\n", "line breaks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := RemoveRoleRefs([]byte(tc.file), []string{"/r/a.yml"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// A flow list that holds none of the refs is left alone, without error.
	out, removed, err := RemoveRoleRefs([]byte("roles: [{$ref: /r/b.yml}]\n"), []string{"/r/a.yml"})
	if err != nil || removed != nil || string(out) != "roles: [{$ref: /r/b.yml}]\n" {
		t.Fatalf("%q %v %v", out, removed, err)
	}
	// No roles at all, or empty ones: nothing to do.
	for _, f := range []string{"name: a\n", "roles:\nname: a\n", "roles: []\n", ""} {
		out, removed, err := RemoveRoleRefs([]byte(f), []string{"/r/a.yml"})
		if err != nil || removed != nil || string(out) != f {
			t.Fatalf("%q: %q %v %v", f, out, removed, err)
		}
	}
}

func TestRestoreRoleRefs(t *testing.T) {
	lOsio := "- $ref: /teams/devtools/roles/osio.yml # production console\n"
	rmOsio := Removed{Ref: refOsio, Index: 1, Line: lOsio, Below: 2}
	rmView := Removed{Ref: refViewer, Index: 4, Line: "- $ref: '/teams/insights/roles/viewer.yml'\n", Below: 2}
	tests := []struct {
		name, file string
		removed    []Removed
		want       string
		skipped    []string
	}{
		{
			name:    "already present: skipped, file unchanged",
			file:    userFile,
			removed: []Removed{rmOsio},
			want:    userFile,
			skipped: []string{refOsio},
		},
		{
			name: "the list got shorter meanwhile: clamped to its end",
			file: "org_username: jdoe\nroles:\n- $ref: /r/kept.yml\n\npublic_gpg_key: x\n",
			removed: []Removed{
				rmView,
				{Ref: "/r/gone.yml", Index: 7, Line: "- $ref: /r/gone.yml\n"},
			},
			want: "org_username: jdoe\nroles:\n- $ref: /r/kept.yml\n- $ref: '/teams/insights/roles/viewer.yml'\n- $ref: /r/gone.yml\n\npublic_gpg_key: x\n",
		},
		{
			name:    "more blank lines recorded than there are now",
			file:    "roles:\n- $ref: /r/a.yml\n- $ref: /r/c.yml\n",
			removed: []Removed{{Ref: "/r/b.yml", Index: 1, Line: "- $ref: /r/b.yml\n", Below: 5}},
			want:    "roles:\n- $ref: /r/a.yml\n- $ref: /r/b.yml\n- $ref: /r/c.yml\n",
		},
		{
			name:    "roles: [] becomes a block list",
			file:    "org_username: jdoe\nroles: [] # emptied by hand\nname: Jane\n",
			removed: []Removed{rmOsio},
			want:    "org_username: jdoe\nroles: # emptied by hand\n" + lOsio + "name: Jane\n",
		},
		{
			name:    "roles: ~",
			file:    "roles: ~\nname: Jane\n",
			removed: []Removed{rmView, rmOsio},
			want:    "roles:\n" + lOsio + rmView.Line + "name: Jane\n",
		},
		{
			name:    "roles: with no value, last key, no final newline",
			file:    "name: Jane\nroles:",
			removed: []Removed{rmOsio},
			want:    "name: Jane\nroles:\n" + lOsio,
		},
		{
			name:    "roles: missing: added at the end",
			file:    "name: Jane\norg_username: jdoe",
			removed: []Removed{rmOsio},
			want:    "name: Jane\norg_username: jdoe\nroles:\n" + lOsio,
		},
		{
			name:    "re-indented to the list's current indentation",
			file:    "roles:\n    - $ref: /r/a.yml\nname: x\n",
			removed: []Removed{{Ref: "/r/b.yml", Index: 0, Line: "-\n  $ref: /r/b.yml\n"}},
			want:    "roles:\n    -\n      $ref: /r/b.yml\n    - $ref: /r/a.yml\nname: x\n",
		},
		{
			name:    "the previous item moved: the line follows it, not its old index",
			file:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/a.yml\n- $ref: /r/c.yml\n",
			removed: []Removed{{Ref: "/r/b.yml", Index: 1, Line: "- $ref: /r/b.yml\n", After: "/r/a.yml", Before: "/r/c.yml"}},
			want:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/a.yml\n- $ref: /r/b.yml\n- $ref: /r/c.yml\n",
		},
		{
			name:    "the previous item is gone: the line goes before the next one",
			file:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/y.yml\n- $ref: /r/c.yml\n",
			removed: []Removed{{Ref: "/r/b.yml", Index: 0, Line: "- $ref: /r/b.yml\n", After: "/r/a.yml", Before: "/r/c.yml"}},
			want:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/y.yml\n- $ref: /r/b.yml\n- $ref: /r/c.yml\n",
		},
		{
			name:    "both neighbours gone: by index",
			file:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/y.yml\n- $ref: /r/z.yml\n",
			removed: []Removed{{Ref: "/r/b.yml", Index: 1, Line: "- $ref: /r/b.yml\n", After: "/r/a.yml", Before: "/r/c.yml"}},
			want:    "roles:\n- $ref: /r/x.yml\n- $ref: /r/b.yml\n- $ref: /r/y.yml\n- $ref: /r/z.yml\n",
		},
		{
			name:    "nothing to restore",
			file:    userFile,
			removed: nil,
			want:    userFile,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, skipped, err := RestoreRoleRefs([]byte(tc.file), tc.removed)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("output:\n%q\nwant:\n%q", out, tc.want)
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped = %q, want %q", skipped, tc.skipped)
			}
		})
	}
}

func TestRestoreRoleRefsErrors(t *testing.T) {
	ok := Removed{Ref: "/r/a.yml", Index: 0, Line: "- $ref: /r/a.yml\n"}
	tests := []struct {
		name    string
		file    string
		removed Removed
	}{
		{"line holds another ref", "roles:\n- $ref: /r/b.yml\n", Removed{Ref: "/r/a.yml", Line: "- $ref: /r/x.yml\n"}},
		{"line is two items", "roles:\n- $ref: /r/b.yml\n", Removed{Ref: "/r/a.yml", Line: "- $ref: /r/a.yml\n- $ref: /r/c.yml\n"}},
		{"line is not an item", "roles:\n- $ref: /r/b.yml\n", Removed{Ref: "/r/a.yml", Line: "name: x\n"}},
		{"empty", "roles:\n- $ref: /r/b.yml\n", Removed{}},
		{"negative index", "roles:\n- $ref: /r/b.yml\n", Removed{Ref: "/r/a.yml", Index: -1, Line: ok.Line}},
		{"flow list", "roles: [{$ref: /r/b.yml}]\n", ok},
		{"roles is a string", "roles: none\n", ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if out, _, err := RestoreRoleRefs([]byte(tc.file), []Removed{tc.removed}); err == nil {
				t.Fatalf("no error; output %q", out)
			}
		})
	}
}

func TestAppendResetPassword(t *testing.T) {
	const jdoe = "/teams/devtools/users/jdoe.yml"
	tests := []struct {
		name, file, user, id string
		want                 string
	}{
		{
			name: "after the last entry, before the trailing comment",
			file: accountFile, user: jdoe, id: "osio-bot-r42",
			want: strings.Replace(accountFile, "  requestId: osio-bot-r17\n",
				"  requestId: osio-bot-r17\n- user: {$ref: /teams/devtools/users/jdoe.yml}\n  requestId: osio-bot-r42\n", 1),
		},
		{
			name: "no resetPasswords: the key is added at the end, lists indented as the file does",
			file: accountFileNoResets, user: jdoe, id: "osio-bot-r42",
			want: accountFileNoResets + "resetPasswords:\n  - user: {$ref: /teams/devtools/users/jdoe.yml}\n    requestId: osio-bot-r42\n",
		},
		{
			name: "resetPasswords: [] with a comment",
			file: "name: osio\nsso: false\nresetPasswords: [] # none yet\npremiumSupport: false\n", user: jdoe, id: "r1",
			want: "name: osio\nsso: false\nresetPasswords: # none yet\n- user: {$ref: /teams/devtools/users/jdoe.yml}\n  requestId: r1\npremiumSupport: false\n",
		},
		{
			name: "resetPasswords: with no value, last line, no final newline",
			file: "name: osio\nsso: false\nresetPasswords:", user: jdoe, id: "r1",
			want: "name: osio\nsso: false\nresetPasswords:\n- user: {$ref: /teams/devtools/users/jdoe.yml}\n  requestId: r1\n",
		},
		{
			name: "indented list with a wider dash gap is matched",
			file: "name: osio\nresetPasswords:\n    -   user: {$ref: /u/a.yml}\n        requestId: a\n", user: jdoe, id: "b",
			want: "name: osio\nresetPasswords:\n    -   user: {$ref: /u/a.yml}\n        requestId: a\n    -   user: {$ref: /teams/devtools/users/jdoe.yml}\n        requestId: b\n",
		},
		{
			name: "last entry in flow form, file without final newline",
			file: "name: osio\nresetPasswords:\n  - {user: {$ref: /u/a.yml}, requestId: a}", user: jdoe, id: "b",
			want: "name: osio\nresetPasswords:\n  - {user: {$ref: /u/a.yml}, requestId: a}\n  - user: {$ref: /teams/devtools/users/jdoe.yml}\n    requestId: b\n",
		},
		{
			name: "ids and paths that YAML would misread are quoted",
			file: "name: osio\nresetPasswords: []\n", user: "/u/a b,{c}.yml", id: "1234",
			want: "name: osio\nresetPasswords:\n- user: {$ref: \"/u/a b,{c}.yml\"}\n  requestId: \"1234\"\n",
		},
		{
			name: "CRLF file",
			file: "name: osio\r\nresetPasswords:\r\n- user: {$ref: /u/a.yml}\r\n  requestId: a\r\n", user: jdoe, id: "b",
			want: "name: osio\r\nresetPasswords:\r\n- user: {$ref: /u/a.yml}\r\n  requestId: a\r\n- user: {$ref: /teams/devtools/users/jdoe.yml}\r\n  requestId: b\r\n",
		},
		{
			name: "idempotent: the request id is there for that user (block form)",
			file: accountFile, user: "/teams/devtools/users/asmith.yml", id: "2023-01-17-asmith",
			want: accountFile,
		},
		{
			name: "idempotent: the request id is there for that user (flow form)",
			file: accountFile, user: "/teams/devtools/users/bjones.yml", id: "osio-bot-r17",
			want: accountFile,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendResetPassword([]byte(tc.file), tc.user, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Fatalf("output:\n%s\nwant:\n%s", out, tc.want)
			}
			again, err := AppendResetPassword(out, tc.user, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(out) {
				t.Fatalf("not idempotent:\n%s", again)
			}
		})
	}
}

func TestAppendResetPasswordErrors(t *testing.T) {
	tests := []struct {
		name, file, user, id string
		is                   error
	}{
		{name: "space in request id", file: accountFile, user: "/u/a.yml", id: "osio bot"},
		{name: "tab in request id", file: accountFile, user: "/u/a.yml", id: "osio\tbot"},
		{name: "newline in request id", file: accountFile, user: "/u/a.yml", id: "osio\nbot"},
		{name: "empty request id", file: accountFile, user: "/u/a.yml", id: ""},
		{name: "empty user", file: accountFile, user: " ", id: "r1"},
		{name: "user with a newline", file: accountFile, user: "/u/a.yml\nname: x", id: "r1"},
		{name: "request id used for another user", file: accountFile, user: "/u/a.yml", id: "osio-bot-r17", is: ErrRequestIDConflict},
		{name: "flow list", file: "resetPasswords: [{user: {$ref: /u/b.yml}, requestId: b}]\n", user: "/u/a.yml", id: "r1"},
		{name: "not a list", file: "resetPasswords: {}\n", user: "/u/a.yml", id: "r1"},
		{name: "empty file", file: "", user: "/u/a.yml", id: "r1"},
		{name: "broken YAML", file: "resetPasswords: [\n", user: "/u/a.yml", id: "r1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendResetPassword([]byte(tc.file), tc.user, tc.id)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	for in, want := range map[string]string{
		"osio-bot-r42":      "osio-bot-r42",
		"/teams/a/b.yml":    "/teams/a/b.yml",
		"2023-01-17-asmith": "2023-01-17-asmith",
		"2023-01-17":        `"2023-01-17"`, // a timestamp to YAML
		"123":               `"123"`,
		"true":              `"true"`,
		"null":              `"null"`,
		"a:b":               `"a:b"`,
		"#x":                `"#x"`,
		"-x":                `"-x"`,
		`a"b`:               `"a\"b"`,
	} {
		if got := scalar(in); got != want {
			t.Errorf("scalar(%q) = %s, want %s", in, got, want)
		}
	}
}

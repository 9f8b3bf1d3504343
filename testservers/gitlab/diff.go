package gitlabserver

import (
	"fmt"
	"strings"
)

// UnifiedDiff returns a line diff of a and b as GitLab's diff fields show
// it: hunks ("@@ -l,s +l,s @@") with three lines of context and no file
// header; "\ No newline at end of file" where a side lacks one. Equal
// inputs give "". It uses a longest-common-subsequence table, which is
// plenty for the small files tests use.
func UnifiedDiff(a, b []byte) string {
	x, y := splitKeep(string(a)), splitKeep(string(b))
	ops := diffOps(x, y)
	const ctx = 3
	var out strings.Builder
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: back up to ctx lines of context, then run until more
		// than 2*ctx equal lines follow a change.
		start := max(i-ctx, 0)
		for start < i && ops[start].kind != ' ' {
			start++
		}
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*ctx {
				end = min(end+ctx, run)
				break
			}
			end = run
		}
		ai, bi := ops[start].ai, ops[start].bi
		var an, bn int
		var body strings.Builder
		for _, op := range ops[start:end] {
			switch op.kind {
			case ' ':
				an++
				bn++
				writeLine(&body, ' ', x[op.ai])
			case '-':
				an++
				writeLine(&body, '-', x[op.ai])
			case '+':
				bn++
				writeLine(&body, '+', y[op.bi])
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", rng(ai, an), rng(bi, bn))
		out.WriteString(body.String())
		i = end
	}
	return out.String()
}

func rng(start, n int) string {
	switch {
	case n == 0:
		return fmt.Sprintf("%d,0", start)
	case n == 1:
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeLine(b *strings.Builder, kind byte, line string) {
	b.WriteByte(kind)
	if strings.HasSuffix(line, "\n") {
		b.WriteString(line)
		return
	}
	b.WriteString(line)
	b.WriteString("\n\\ No newline at end of file\n")
}

// splitKeep splits s into lines that keep their "\n".
func splitKeep(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

type op struct {
	kind   byte // ' ', '-', '+'
	ai, bi int  // line indices in a and b (the next ones, for inserts/deletes)
}

func diffOps(x, y []string) []op {
	n, m := len(x), len(y)
	if n*m > 16_000_000 {
		var ops []op
		for i := range x {
			ops = append(ops, op{'-', i, 0})
		}
		for j := range y {
			ops = append(ops, op{'+', n, j})
		}
		return ops
	}
	// lcs[i][j] = LCS length of x[i:], y[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, op{' ', i, j})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, op{'+', i, j})
			j++
		default:
			ops = append(ops, op{'-', i, j})
			i++
		}
	}
	return ops
}

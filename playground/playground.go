// Package playground serves a page on the demo's World: a Slack-like pane
// with the approvals channel and the requester's channel, their threads
// and each person's ephemeral messages; a composer that types slash
// commands and clicks buttons as a chosen person; and the world beside it
// (DynamoDB tables, Data Pipeline runs, the dev bucket, IAM users, the
// mailbox, GitLab merge requests), updated live.
//
// It is a view on the same test servers the tests use, not a second
// implementation: a slash command goes through the Slack test server's
// SlashCommand to the real bot, a click through ClickButton, a run's end
// through the Data Pipeline server, a merge through the GitLab server and
// the World's reconciler. The page is server-rendered HTML, with a little
// script (static/app.js) that fetches the panes again when the server
// says something changed (server-sent events).
//
// It never shows a token or a secret the page's people would not see;
// the mailbox's decrypt button uses the developer's key (World.Key), as
// the developer would.
package playground

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/osio/osio-bot/demo"
	dpserver "github.com/osio/osio-bot/testservers/datapipeline"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

//go:embed static
var static embed.FS

// Server is the playground's HTTP handler.
type Server struct {
	w         *demo.World
	aws       awsClients
	names     names
	mux       *http.ServeMux
	worldTmpl *template.Template

	mu        sync.Mutex
	decrypted map[int]decryption // mailbox index -> what the key made of it
}

type decryption struct{ text, err string }

// New returns the playground's handler for w.
func New(w *demo.World) *Server {
	s := &Server{w: w, names: worldNames(), mux: http.NewServeMux(), decrypted: map[int]decryption{},
		aws: awsClients{
			prod: dynamodb.NewFromConfig(w.Prod),
			dev:  dynamodb.NewFromConfig(w.Dev),
			s3:   s3.NewFromConfig(w.Dev, func(o *s3.Options) { o.UsePathStyle = true }),
			iam:  iam.NewFromConfig(w.Dev),
		},
		worldTmpl: template.Must(template.New("world").Funcs(template.FuncMap{"bytes": humanBytes}).ParseFS(static, "static/world.tmpl")),
	}
	files, _ := fs.Sub(static, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(files)))
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /frag/slack", s.slackPane)
	s.mux.HandleFunc("GET /frag/world", s.worldPane)
	s.mux.HandleFunc("GET /events", s.events)
	s.mux.HandleFunc("POST /api/slash", s.slash)
	s.mux.HandleFunc("POST /api/click", s.click)
	s.mux.HandleFunc("POST /api/world", s.control)
	return s
}

// ServeHTTP serves the page, its panes, events and controls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// Run serves the playground for w on addr (default 127.0.0.1:0), prints
// its URL to out, and returns when ctx ends. It opens nothing.
func Run(ctx context.Context, w *demo.World, addr string, out io.Writer) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if !loopback(addr) {
		return fmt.Errorf("playground: %s is not a loopback address: the page acts as anyone and decrypts the developer's mail, so it is served on 127.0.0.1 (or ::1) only, e.g. --addr 127.0.0.1:8080", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("playground: listening on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: New(w), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	fmt.Fprintf(out, "The playground is at http://%s/ (Ctrl-C ends it)\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("playground: %w", err)
	case <-ctx.Done():
	}
	// ctx has ended: the shutdown gets its own few seconds to finish
	// the requests in flight.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("playground: shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("playground: %w", err)
	}
	return nil
}

// loopback says addr's host is a loopback IP or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var opts strings.Builder
	for _, p := range cast {
		fmt.Fprintf(&opts, `<option value="%s">%s (%s)</option>`, template.HTMLEscapeString(p.ID),
			template.HTMLEscapeString(p.Name), template.HTMLEscapeString(p.Role))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, strings.Replace(string(page), "<!--people-->", opts.String(), 1))
}

// known says whether id is one of the people the page can act as.
func known(id string) bool {
	for _, p := range cast {
		if p.ID == id {
			return true
		}
	}
	return false
}

func (s *Server) slackPane(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("as")
	if !known(user) {
		http.Error(w, "choose someone to be: the developer, an interrupt catcher or the stranger", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, renderSlack(s.w.Slack, s.names, user))
}

func (s *Server) worldPane(w http.ResponseWriter, r *http.Request) {
	v := s.world(r.Context())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.worldTmpl.ExecuteTemplate(w, "world.tmpl", v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// events tells the page, as server-sent events, when the Slack pane
// changed ("slack", at once) and when to look at the world again
// ("world", every worldEvery).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	notes := s.w.Slack.Watch(r.Context())
	tick := time.NewTicker(worldEvery)
	defer tick.Stop()
	send := func(ev string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %d\n\n", ev, time.Now().UnixMilli()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("hello") {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case _, ok := <-notes:
			if !ok || !send("slack") {
				return
			}
		case <-tick.C:
			if !send("world") {
				return
			}
		}
	}
}

// worldEvery is how often the page looks at the world panes again.
const worldEvery = 1500 * time.Millisecond

// answer ends a control: a person's mistake is a 400 with a sentence, a
// failure of the world a 502.
func answer(w http.ResponseWriter, msg string, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var m mistake
	switch {
	case errors.As(err, &m):
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, string(m))
	case err != nil:
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, err.Error())
	default:
		_, _ = io.WriteString(w, msg)
	}
}

// mistake is something the page's user got wrong.
type mistake string

func (m mistake) Error() string { return string(m) }

// slash types a slash command as the chosen person in #osio-dev.
func (s *Server) slash(w http.ResponseWriter, r *http.Request) {
	user, line := r.FormValue("user"), strings.TrimSpace(r.FormValue("text"))
	if !known(user) {
		answer(w, "", mistake("choose someone to be first"))
		return
	}
	cmd, text, _ := strings.Cut(line, " ")
	if !strings.HasPrefix(cmd, "/") || len(cmd) < 2 {
		answer(w, "", mistake("type a slash command, such as /osio-export "+demo.Table))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	_, err := s.w.Slack.SlashCommand(ctx, slackserver.SlashCommand{Command: cmd, Text: strings.TrimSpace(text), UserID: user, ChannelID: testenv.DevChannel})
	if err != nil {
		err = fmt.Errorf("the bot did not acknowledge %s: %w", cmd, err)
	}
	answer(w, "sent "+cmd, err)
}

// click clicks a button as the chosen person; the page has shown its
// confirm dialog first, if it has one.
func (s *Server) click(w http.ResponseWriter, r *http.Request) {
	c := slackserver.Click{UserID: r.FormValue("user"), ChannelID: r.FormValue("channel"), MessageTS: r.FormValue("ts"),
		ActionID: r.FormValue("action_id"), BlockID: r.FormValue("block_id"), Value: r.FormValue("value")}
	if !known(c.UserID) {
		answer(w, "", mistake("choose someone to be first"))
		return
	}
	if c.ChannelID == "" || c.MessageTS == "" || c.ActionID == "" {
		answer(w, "", mistake("that button names no message or action"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	_, err := s.w.Slack.ClickButton(ctx, c)
	if err != nil {
		err = fmt.Errorf("the bot did not acknowledge the click: %w", err)
	}
	answer(w, "clicked", err)
}

var armored = regexp.MustCompile(`(?s)-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----`)

// control carries out a world control: Data Pipeline holds and run ends,
// GitLab merges and closes, the mailbox's decrypt.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	op := r.FormValue("op")
	var err error
	msg := "done"
	switch op {
	case "hold":
		s.w.DP.Hold(r.FormValue("name"))
		msg = "runs of " + r.FormValue("name") + " are held RUNNING"
	case "release":
		s.w.DP.Release(r.FormValue("name"))
		msg = "runs of " + r.FormValue("name") + " go on"
	case "fail":
		err = s.w.DP.FailRun(r.FormValue("id"), r.FormValue("msg"))
		msg = "the run fails"
	case "finish":
		err = s.w.DP.FinishRun(r.FormValue("id"))
		msg = "the run goes on to its end"
	case "merge", "close":
		var iid int64
		if iid, err = strconv.ParseInt(r.FormValue("iid"), 10, 64); err != nil {
			err = mistake("no such merge request")
			break
		}
		if op == "merge" {
			err, msg = s.w.GitLab.Merge(iid), fmt.Sprintf("!%d merged; the reconciler ran", iid)
		} else {
			err, msg = s.w.GitLab.CloseMR(iid), fmt.Sprintf("!%d closed", iid)
		}
	case "decrypt":
		msg, err = s.decrypt(r.FormValue("index"))
	default:
		err = mistake("unknown control " + strconv.Quote(op))
	}
	if errors.Is(err, dpserver.ErrNotHeld) {
		err = mistake("that run is not held: hold runs of its table before the export starts")
	}
	answer(w, msg, err)
}

// decrypt decrypts the PGP message in mail i with the developer's key and
// keeps the result for the mailbox pane.
func (s *Server) decrypt(index string) (string, error) {
	i, err := strconv.Atoi(index)
	msgs := s.w.SMTP.Messages()
	if err != nil || i < 0 || i >= len(msgs) {
		return "", mistake("no such mail")
	}
	d := decryption{}
	block := armored.Find([]byte(strings.ReplaceAll(string(msgs[i].Data), "\r\n", "\n")))
	if block == nil {
		return "", mistake("that mail holds no PGP message")
	}
	d.text, err = open(s.w.Key, string(block))
	if err != nil {
		d.err = err.Error()
	}
	s.mu.Lock()
	s.decrypted[i] = d
	s.mu.Unlock()
	if err != nil {
		return "", mistake("the developer's key cannot decrypt it: " + err.Error())
	}
	return "decrypted with the developer's key", nil
}

func open(key *crypto.Key, armoredMsg string) (string, error) {
	ring, err := crypto.NewKeyRing(key)
	if err != nil {
		return "", err
	}
	msg, err := crypto.NewPGPMessageFromArmored(armoredMsg)
	if err != nil {
		return "", err
	}
	plain, err := ring.Decrypt(msg, nil, 0)
	if err != nil {
		return "", err
	}
	return plain.GetString(), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func itoa(n int) string { return strconv.Itoa(n) }

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

package slackserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// users.info reports guests as Slack does: through slack-go's User, and in
// the raw JSON every role flag is present, false for a full member.
func TestUsersInfoGuests(t *testing.T) {
	srv := newTestServer(t)
	srv.AddUser(User{ID: "UMEMBER", Name: "m", Email: "m@example.com"})
	srv.AddUser(User{ID: "UMULTI", Name: "g", Email: "g@gmail.com", Restricted: true})
	srv.AddUser(User{ID: "USINGLE", Name: "s", Email: "s@gmail.com", UltraRestricted: true})
	api := newAPI(srv)
	ctx := testCtx(t)
	for _, tt := range []struct {
		id                string
		restricted, ultra bool
	}{{"UMEMBER", false, false}, {"UMULTI", true, false}, {"USINGLE", true, true}} {
		u, err := api.GetUserInfoContext(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if u.IsRestricted != tt.restricted || u.IsUltraRestricted != tt.ultra {
			t.Errorf("%s: is_restricted=%v is_ultra_restricted=%v, want %v %v", tt.id, u.IsRestricted, u.IsUltraRestricted, tt.restricted, tt.ultra)
		}
	}
	resp, err := http.PostForm(srv.APIURL()+"users.info", url.Values{"token": {"xoxb-test"}, "user": {"UMEMBER"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		User map[string]any `json:"user"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"is_admin", "is_owner", "is_primary_owner", "is_restricted", "is_ultra_restricted", "is_bot", "is_app_user", "deleted"} {
		if v, ok := body.User[k]; !ok || v != false {
			t.Errorf("users.info user.%s = %v (present %v), want false", k, v, ok)
		}
	}
}

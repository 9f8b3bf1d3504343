package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// IAMUser is user's id in the dev account's IAM and the console password
// moto holds for it ("" when it has none): what a console sign-in would be
// checked against. moto has no sign-in, so this reads moto_server's own
// state (/moto-api/data.json). That state also lists users deleted
// earlier under the same name (with no password), so the live one is
// picked by the UserId GetUser reports.
func (e *Env) IAMUser(ctx context.Context, user string) (id, password string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	live, err := iam.NewFromConfig(e.Dev).GetUser(cctx, &iam.GetUserInput{UserName: aws.String(user)})
	if err != nil {
		return "", "", fmt.Errorf("IAM in osio-dev: %s: %w", user, err)
	}
	id = aws.ToString(live.User.UserId)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, e.Moto.URL+"/moto-api/data.json", nil)
	if err != nil {
		return "", "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("reading moto's IAM state: %w", err)
	}
	defer resp.Body.Close()
	var raw struct {
		IAM struct {
			User []struct {
				ID        string `json:"id"`
				Name      string `json:"name"`
				AccountID string `json:"account_id"`
				Password  string `json:"password"`
			} `json:"User"`
		} `json:"iam"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return "", "", fmt.Errorf("reading moto's IAM state: %w", err)
	}
	for _, u := range raw.IAM.User {
		if u.ID == id && u.Name == user && u.AccountID == DevAccount {
			return id, u.Password, nil
		}
	}
	return "", "", fmt.Errorf("moto's state has no user %s (%s) in osio-dev", user, id)
}

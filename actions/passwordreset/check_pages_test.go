package passwordreset

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/osio/osio-bot/config"
)

// pagedIAM answers IAM's list calls as IAM may: "fewer than the MaxItems
// number of results even when there are more results available", here
// one item a page after an empty first page, with IsTruncated and a Marker.
type pagedIAM struct {
	IAM                    // nil: calls a check does not make panic
	keys, groups, policies []string
}

// page returns the items of a page at marker, the next marker and
// whether more follow: page "" is empty, then one item each.
func page(items []string, marker *string) ([]string, *string, bool) {
	i := -1
	if marker != nil {
		i, _ = strconv.Atoi(*marker)
	}
	var out []string
	if i >= 0 && i < len(items) {
		out = items[i : i+1]
	}
	if i+1 >= len(items) {
		return out, nil, false
	}
	return out, aws.String(strconv.Itoa(i + 1)), true
}

func (f *pagedIAM) GetUser(_ context.Context, in *iam.GetUserInput, _ ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	return &iam.GetUserOutput{User: &iamtypes.User{UserName: in.UserName}}, nil
}

func (f *pagedIAM) GetLoginProfile(context.Context, *iam.GetLoginProfileInput, ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error) {
	return &iam.GetLoginProfileOutput{}, nil
}

func (f *pagedIAM) ListAccessKeys(_ context.Context, in *iam.ListAccessKeysInput, _ ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	items, next, more := page(f.keys, in.Marker)
	out := &iam.ListAccessKeysOutput{Marker: next, IsTruncated: more}
	for _, k := range items {
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, iamtypes.AccessKeyMetadata{AccessKeyId: aws.String(k)})
	}
	return out, nil
}

func (f *pagedIAM) ListGroupsForUser(_ context.Context, in *iam.ListGroupsForUserInput, _ ...func(*iam.Options)) (*iam.ListGroupsForUserOutput, error) {
	items, next, more := page(f.groups, in.Marker)
	out := &iam.ListGroupsForUserOutput{Marker: next, IsTruncated: more}
	for _, g := range items {
		out.Groups = append(out.Groups, iamtypes.Group{GroupName: aws.String(g)})
	}
	return out, nil
}

func (f *pagedIAM) ListAttachedUserPolicies(_ context.Context, in *iam.ListAttachedUserPoliciesInput, _ ...func(*iam.Options)) (*iam.ListAttachedUserPoliciesOutput, error) {
	items, next, more := page(f.policies, in.Marker)
	out := &iam.ListAttachedUserPoliciesOutput{Marker: next, IsTruncated: more}
	for _, p := range items {
		out.AttachedPolicies = append(out.AttachedPolicies, iamtypes.AttachedPolicy{PolicyName: aws.String(p)})
	}
	return out, nil
}

// A check reads every page of the user's access keys, groups and attached
// policies: what the approver is shown, and what the recommended method
// rests on (a user with keys or policies is not recreated).
func TestCheckReadsEveryIAMPage(t *testing.T) {
	pub := danaKey(t)
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio-dev", ID: "619539278362"}}
	cfg.AWS.CallTimeout = config.Duration(time.Second)
	fake := &pagedIAM{keys: []string{"AKIA1", "AKIA2"}, groups: []string{"devs", "ops", "readers"}, policies: []string{"ReadOnly", "S3Full"}}
	r := New(cfg, Deps{IAM: map[string]IAM{"osio-dev": fake},
		Directory: oneperson{Person{OrgUsername: "dana", Email: "dana@example.com", PublicGPGKey: pub}}})
	a, msg, err := r.Check(context.Background(), Request{User: "dana", Account: "osio-dev"}, "UDANA", "dana@example.com")
	if err != nil || msg != "" {
		t.Fatalf("check: %q, %v", msg, err)
	}
	if a.AccessKeys != 2 || !slices.Equal(a.Groups, fake.groups) || !slices.Equal(a.Policies, fake.policies) {
		t.Errorf("the check saw %d access keys, groups %v, policies %v; want 2, %v, %v", a.AccessKeys, a.Groups, a.Policies, fake.groups, fake.policies)
	}
}

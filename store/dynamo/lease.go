package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/actions"
)

// A lease item holds owner, epoch and expires (Unix nanoseconds, compared
// in conditions), and expires_at (Unix seconds, Housekeeping after the
// expiry) for TTL to delete a lease nobody has used for long. A lease
// deleted so starts again at epoch 1; owners are unique per process, so a
// stale holder of an old epoch 1 is still refused by its owner.

func (s *Store) getLease(name string) (actions.Lease, bool, error) {
	it, err := s.get(leasePK(name), skLease)
	if err != nil || it == nil {
		return actions.Lease{Name: name}, false, err
	}
	return actions.Lease{Name: name, Owner: getS(it, "owner"), Epoch: uint64(getN(it, "epoch")), Expires: fromUnixNano(getN(it, "expires"))}, true, nil
}

func (s *Store) leaseAttrs(l actions.Lease) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		":o": str(l.Owner), ":e": num(l.Epoch), ":x": num(unixNano(l.Expires)),
		":ttl": num(l.Expires.Add(s.housekeeping).Unix()),
	}
}

// AcquireLease takes the lease name for owner for ttl; see
// store.Store.AcquireLease.
func (s *Store) AcquireLease(name, owner string, ttl time.Duration) (actions.Lease, error) {
	if name == "" || owner == "" {
		return actions.Lease{}, fmt.Errorf("acquiring lease %q for %q: name and owner are required", name, owner)
	}
	for attempt := range s.attempts {
		if attempt > 0 {
			backoff(attempt)
		}
		cur, found, err := s.getLease(name)
		if err != nil {
			return actions.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
		}
		now := s.now().UTC()
		if cur.Owner == owner && cur.Held(now) {
			l, err := s.RenewLease(cur, ttl)
			if actions.LeaseLost(err) {
				continue
			}
			return l, err
		}
		if cur.Held(now) {
			return actions.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, &actions.LeaseHeld{Current: cur})
		}
		next := actions.Lease{Name: name, Owner: owner, Epoch: cur.Epoch + 1, Expires: now.Add(ttl)}
		in := &dynamodb.PutItemInput{
			TableName: &s.table,
			Item: item(leasePK(name), skLease, map[string]types.AttributeValue{
				"owner": str(next.Owner), "epoch": num(next.Epoch), "expires": num(unixNano(next.Expires)),
				"expires_at": num(next.Expires.Add(s.housekeeping).Unix()),
			}),
			ConditionExpression: aws.String("attribute_not_exists(PK)"),
		}
		if found {
			// Compare-and-set on the lease as read.
			in.ConditionExpression = aws.String("#o = :o AND epoch = :e AND expires = :x")
			in.ExpressionAttributeNames = map[string]string{"#o": "owner"}
			in.ExpressionAttributeValues = map[string]types.AttributeValue{":o": str(cur.Owner), ":e": num(cur.Epoch), ":x": num(unixNano(cur.Expires))}
		}
		_, err = call(s, "acquiring lease "+name, func(ctx context.Context) (*dynamodb.PutItemOutput, error) {
			return s.c.PutItem(ctx, in)
		})
		if isCondFailed(err) {
			continue // changed meanwhile (or this call's own lost answer): look again
		}
		if err != nil {
			return actions.Lease{}, err
		}
		return next, nil
	}
	return actions.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, errContention)
}

// RenewLease extends l to now+ttl when it is still current; otherwise it
// returns an error wrapping actions.ErrLeaseLost and changes nothing.
func (s *Store) RenewLease(l actions.Lease, ttl time.Duration) (actions.Lease, error) {
	now := s.now().UTC()
	out := l
	out.Expires = now.Add(ttl)
	vals := s.leaseAttrs(out)
	vals[":now"] = num(now.UnixNano())
	_, err := call(s, "renewing lease "+l.Name, func(ctx context.Context) (*dynamodb.UpdateItemOutput, error) {
		return s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       key(leasePK(l.Name), skLease),
			UpdateExpression:          aws.String("SET expires = :x, expires_at = :ttl"),
			ConditionExpression:       aws.String("#o = :o AND epoch = :e AND expires > :now"),
			ExpressionAttributeNames:  map[string]string{"#o": "owner"},
			ExpressionAttributeValues: vals,
		})
	})
	if isCondFailed(err) {
		return actions.Lease{}, fmt.Errorf("renewing lease %s: %w", l.Name, actions.LostLease(l, "expired or taken"))
	}
	if err != nil {
		return actions.Lease{}, err
	}
	return out, nil
}

// ReleaseLease frees l at once, keeping its epoch; see
// store.Store.ReleaseLease.
func (s *Store) ReleaseLease(l actions.Lease) error {
	_, err := call(s, "releasing lease "+l.Name, func(ctx context.Context) (*dynamodb.UpdateItemOutput, error) {
		return s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       key(leasePK(l.Name), skLease),
			UpdateExpression:          aws.String("SET #o = :none, expires = :zero"),
			ConditionExpression:       aws.String("epoch = :e AND (#o = :o OR #o = :none)"),
			ExpressionAttributeNames:  map[string]string{"#o": "owner"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":o": str(l.Owner), ":e": num(l.Epoch), ":none": str(""), ":zero": num(0)},
		})
	})
	if isCondFailed(err) {
		return fmt.Errorf("releasing lease %s: %w", l.Name, actions.LostLease(l, "taken by another owner"))
	}
	return err
}

// checkFence fails with actions.ErrLeaseLost unless fence is current at
// now (for a fenced write that writes nothing else).
func (s *Store) checkFence(fence *actions.Lease, now time.Time) error {
	cur, found, err := s.getLease(fence.Name)
	if err != nil {
		return err
	}
	switch {
	case !found:
		return actions.LostLease(*fence, "no such lease")
	case cur.Owner != fence.Owner || cur.Epoch != fence.Epoch:
		return actions.LostLease(*fence, fmt.Sprintf("now held by %q at epoch %d", cur.Owner, cur.Epoch))
	case !now.Before(cur.Expires):
		return actions.LostLease(*fence, "expired at "+cur.Expires.Format(time.RFC3339Nano))
	}
	return nil
}

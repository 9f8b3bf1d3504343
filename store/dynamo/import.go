package dynamo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/store"
)

// Import writes c (a bbolt store's Export) into the table, item by item,
// for `osio-bot store migrate`; run it with every bot stopped. It is
// idempotent, so an interrupted import is run again; it refuses a table
// that holds a request c does not (a table another store uses). Requests
// are written last, so a table holds no request before everything else
// it refers to is there.
func (s *Store) Import(c *store.Contents) error {
	existing, err := s.query(pkRequests, nil, false)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	ids := map[string]bool{}
	for _, r := range c.Requests {
		ids[r.ID] = true
	}
	for _, it := range existing {
		if id := getS(it, "id"); !ids[id] {
			return fmt.Errorf("importing into table %s: it holds request %s, which the store being imported does not: is the table another bot's?", s.table, id)
		}
	}
	put := func(what string, it map[string]types.AttributeValue) error {
		_, err := call(s, "importing "+what, func(ctx context.Context) (*dynamodb.PutItemOutput, error) {
			return s.c.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it})
		})
		return err
	}
	for id, evs := range c.Events {
		for _, e := range evs {
			data, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("importing event %s/%d: %w", id, e.Seq, err)
			}
			if err := put("event "+id, item(eventsPK(id), eventSK(e.Seq), map[string]types.AttributeValue{"data": str(string(data))})); err != nil {
				return err
			}
		}
	}
	for id, cur := range c.Cursors {
		data, _ := json.Marshal(cur)
		if err := put("cursor "+id, item(eventsPK(id), skCursor, map[string]types.AttributeValue{"data": str(string(data))})); err != nil {
			return err
		}
	}
	for _, id := range c.Outbox {
		n, ok := parseID(id)
		if !ok {
			continue
		}
		if err := put("outbox "+id, item(pkOutbox, reqSK(n), map[string]types.AttributeValue{"id": str(id)})); err != nil {
			return err
		}
	}
	for id, cps := range c.Checkpoints {
		for k, v := range cps {
			if err := put("checkpoint "+id+"/"+k, item(cpPK(id), k, map[string]types.AttributeValue{"data": str(string(v))})); err != nil {
				return err
			}
		}
	}
	for l, holder := range c.Locks {
		if err := put("lock "+l, item(lockPK(l), skLock, map[string]types.AttributeValue{"holder": str(holder)})); err != nil {
			return err
		}
	}
	for k, claim := range c.Envelopes {
		if claim.At.IsZero() {
			claim.At = s.now().UTC() // of unknown age: kept a day from now
		}
		if err := put("envelope "+k, s.envelopeItem(k, claim.At, claim.Request, "")); err != nil {
			return err
		}
	}
	for _, l := range c.Leases {
		if err := put("lease "+l.Name, item(leasePK(l.Name), skLease, map[string]types.AttributeValue{
			"owner": str(l.Owner), "epoch": num(l.Epoch), "expires": num(unixNano(l.Expires)),
			"expires_at": num(l.Expires.Add(s.housekeeping).Unix()),
		})); err != nil {
			return err
		}
	}
	if err := put("the request sequence", item(pkMeta, "COUNTER", map[string]types.AttributeValue{"n": num(c.Sequence)})); err != nil {
		return err
	}
	for _, r := range c.Requests {
		last, lastHash := c.EventSeqs[r.ID], ""
		if evs := c.Events[r.ID]; len(evs) > 0 {
			if evs[len(evs)-1].Seq > last {
				last = evs[len(evs)-1].Seq
			}
			lastHash = evs[len(evs)-1].Hash // the chain goes on from it
		}
		it, err := reqItem(r, last, lastHash, "")
		if err != nil {
			return fmt.Errorf("importing request %s: %w", r.ID, err)
		}
		if err := put("request "+r.ID, it); err != nil {
			return err
		}
		if r.Active() {
			if err := put("request "+r.ID, activeItem(r.ID, true).Put.Item); err != nil {
				return err
			}
		}
	}
	return nil
}

// Package dynamo is osio-bot's store on one DynamoDB table, for several
// replicas: the same contract as the embedded bbolt store (package store;
// the cases are store/storetest), shared between processes.
//
// Rules: every compare-and-set is a conditional write (the request item
// carries its version and its event count); what bbolt does in one
// transaction (a request, its events, its locks, the outbox, a lease's
// fence) is one TransactWriteItems; every read that decides something is
// strongly consistent; short-lived records carry the TTL attribute
// expires_at, for housekeeping only (a lease's expiry is a time compared in
// a condition, never a TTL); every call has its own deadline.
//
// Layout (PK, SK are strings; see deploy/dynamodb/README.md):
//
//	REQ             R#<20-digit number>   a request: data (JSON), version, evseq, tok
//	EVT#<id>        E#<20-digit seq>      an event (JSON)
//	EVT#<id>        CURSOR                the delivery cursor (JSON)
//	OUTBOX          R#<20-digit number>   a request with undelivered events
//	ACTIVE          R#<20-digit number>   a request not in a terminal state
//	CP#<id>         <key>                 a checkpoint (JSON)
//	LOCK#<name>     LOCK                  a resource lock: holder
//	ENV             slash:<id>|click:<id> a claimed envelope: at, expires_at (TTL)
//	LEASE#<name>    LEASE                 a lease: owner, epoch, expires, expires_at (TTL)
//	META            COUNTER               the request id sequence (ADD)
//	META            PROBE                 readiness writes
package dynamo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/actions"
)

// Client is the part of the DynamoDB API the store calls (SDK signatures).
type Client interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Options tune New.
type Options struct {
	// Table is the table's name; required.
	Table string
	// Now is the clock; time.Now when nil. Lease expiries are compared
	// with the writer's clock, so replicas' clocks should agree to well
	// within a lease's TTL.
	Now func() time.Time
	// CallTimeout bounds each DynamoDB call; 5s when zero.
	CallTimeout time.Duration
	// Housekeeping is how long after their use envelope claims and leases
	// are left for DynamoDB's TTL to delete; 7 days when zero.
	Housekeeping time.Duration
	// MaxAttempts bounds the tries of one compare-and-set that keeps
	// losing to concurrent writers; 100 when zero.
	MaxAttempts int
}

// Store is the DynamoDB-backed store. It is safe for concurrent use, from
// any number of processes.
type Store struct {
	c            Client
	table        string
	now          func() time.Time
	timeout      time.Duration
	housekeeping time.Duration
	attempts     int
}

// New returns the store on table o.Table through c. The table must exist
// (see CreateTable).
func New(c Client, o Options) (*Store, error) {
	if o.Table == "" {
		return nil, errors.New("dynamodb store: a table name is required")
	}
	s := &Store{c: c, table: o.Table, now: o.Now, timeout: o.CallTimeout, housekeeping: o.Housekeeping, attempts: o.MaxAttempts}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.housekeeping <= 0 {
		s.housekeeping = 7 * 24 * time.Hour
	}
	if s.attempts <= 0 {
		s.attempts = 100
	}
	return s, nil
}

// Close releases nothing; it is here so that both backends close alike.
func (s *Store) Close() error { return nil }

// Table is the table's name.
func (s *Store) Table() string { return s.table }

const (
	pkRequests = "REQ"
	pkOutbox   = "OUTBOX"
	pkActive   = "ACTIVE"
	pkEnvelope = "ENV"
	pkMeta     = "META"
	skCursor   = "CURSOR"
	skLock     = "LOCK"
	skLease    = "LEASE"
	maxSeq     = "E#99999999999999999999"
)

func reqSK(n uint64) string     { return fmt.Sprintf("R#%020d", n) }
func eventSK(seq uint64) string { return fmt.Sprintf("E#%020d", seq) }
func eventsPK(id string) string { return "EVT#" + id }
func cpPK(id string) string     { return "CP#" + id }
func lockPK(l string) string    { return "LOCK#" + l }
func leasePK(n string) string   { return "LEASE#" + n }

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num[T int64 | uint64 | int](v T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(v)}
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"PK": str(pk), "SK": str(sk)}
}

func item(pk, sk string, attrs map[string]types.AttributeValue) map[string]types.AttributeValue {
	m := key(pk, sk)
	for k, v := range attrs {
		m[k] = v
	}
	return m
}

func getS(m map[string]types.AttributeValue, name string) string {
	if v, ok := m[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(m map[string]types.AttributeValue, name string) int64 {
	if v, ok := m[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// call runs f with a context bounded by the call timeout. The store's
// API takes no context (it is the bbolt store's contract, which the bot
// and the runner share), so each call starts from context.Background with
// its own deadline: a shutdown waits at most CallTimeout for a call in
// flight. Threading the callers' contexts through the store contract (both
// backends) is the better fix, not done yet.
func call[T any](s *Store, what string, f func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	out, err := f(ctx)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// get reads one item, strongly consistent; nil when there is none.
func (s *Store) get(pk, sk string) (map[string]types.AttributeValue, error) {
	out, err := call(s, "reading "+pk+"/"+sk, func(ctx context.Context) (*dynamodb.GetItemOutput, error) {
		return s.c.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
	})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// query reads a whole key range, strongly consistent, in key order
// (descending when desc).
func (s *Store) query(pk string, between *[2]string, desc bool) ([]map[string]types.AttributeValue, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(!desc),
	}
	if between != nil {
		in.KeyConditionExpression = aws.String("PK = :pk AND SK BETWEEN :lo AND :hi")
		in.ExpressionAttributeValues[":lo"] = str(between[0])
		in.ExpressionAttributeValues[":hi"] = str(between[1])
	}
	var items []map[string]types.AttributeValue
	for {
		out, err := call(s, "querying "+pk, func(ctx context.Context) (*dynamodb.QueryOutput, error) {
			return s.c.Query(ctx, in)
		})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// cancelled is a TransactWriteItems that was cancelled; codes[i] is item
// i's reason ("None", "ConditionalCheckFailed", "TransactionConflict"...).
type cancelled struct {
	codes []string
	err   error
}

func (c *cancelled) Error() string { return c.err.Error() }
func (c *cancelled) Unwrap() error { return c.err }

// contended reports whether trying again may succeed: every item either
// failed its condition (the world changed since it was read), met a
// concurrent transaction or throttling, or was fine. Any other reason
// (a validation error, say) will not go away.
func (c *cancelled) contended() bool {
	for _, code := range c.codes {
		switch code {
		case "", "None", "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError":
		default:
			return false
		}
	}
	return true
}

// failed reports whether item i failed its condition.
func (c *cancelled) failed(i int) bool {
	return i >= 0 && i < len(c.codes) && c.codes[i] == "ConditionalCheckFailed"
}

// transact writes items in one transaction with the idempotency token
// tok (a retry of a call whose answer was lost is not applied twice).
func (s *Store) transact(what string, items []types.TransactWriteItem, tok string) error {
	for i := range items {
		switch it := items[i]; {
		case it.Put != nil:
			it.Put.TableName = &s.table
		case it.Update != nil:
			it.Update.TableName = &s.table
		case it.Delete != nil:
			it.Delete.TableName = &s.table
		case it.ConditionCheck != nil:
			it.ConditionCheck.TableName = &s.table
		}
	}
	_, err := call(s, what, func(ctx context.Context) (*dynamodb.TransactWriteItemsOutput, error) {
		return s.c.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items, ClientRequestToken: &tok})
	})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		c := &cancelled{err: err}
		for _, r := range tc.CancellationReasons {
			c.codes = append(c.codes, aws.ToString(r.Code))
		}
		return c
	}
	var tce *types.TransactionConflictException
	if errors.As(err, &tce) {
		return &cancelled{err: err}
	}
	return err
}

// isCondFailed reports a single write's failed condition.
func isCondFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// backoff waits a little before attempt n+1 of a contended write.
func backoff(n int) {
	d := time.Duration(1+min(n, 8)) * time.Millisecond
	time.Sleep(d + time.Duration(mrand.Int64N(int64(d))))
}

var errContention = errors.New("gave up after too many concurrent writers")

// Both store contracts are met.
var _ actions.Store = (*Store)(nil)

// formatID is a request id's text for sequence number n.
func formatID(n uint64) string { return fmt.Sprintf("R-%06d", n) }

// parseID returns the number of a well-formed request id.
func parseID(id string) (uint64, bool) {
	digits, ok := strings.CutPrefix(id, "R-")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || formatID(n) != id {
		return 0, false
	}
	return n, true
}

// reqMeta is what the request item holds beside the request.
type reqMeta struct {
	version int64
	evseq   uint64
	evhash  string // the hash of event evseq (the chain's end)
	tok     string
}

// getReq reads request id; actions.ErrNotFound when there is none.
func (s *Store) getReq(id string) (*actions.Request, reqMeta, error) {
	n, ok := parseID(id)
	if !ok {
		return nil, reqMeta{}, fmt.Errorf("%w: %s", actions.ErrNotFound, id)
	}
	it, err := s.get(pkRequests, reqSK(n))
	if err != nil {
		return nil, reqMeta{}, err
	}
	if it == nil {
		return nil, reqMeta{}, fmt.Errorf("%w: %s", actions.ErrNotFound, id)
	}
	return decodeReq(it)
}

func decodeReq(it map[string]types.AttributeValue) (*actions.Request, reqMeta, error) {
	var r actions.Request
	if err := json.Unmarshal([]byte(getS(it, "data")), &r); err != nil {
		return nil, reqMeta{}, fmt.Errorf("decoding request %s: %w", getS(it, "SK"), err)
	}
	return &r, reqMeta{version: getN(it, "version"), evseq: uint64(getN(it, "evseq")), evhash: getS(it, "evhash"), tok: getS(it, "tok")}, nil
}

// reqItem is the item of request r, whose last event is number evseq
// with hash evhash, written with token tok.
func reqItem(r *actions.Request, evseq uint64, evhash, tok string) (map[string]types.AttributeValue, error) {
	n, ok := parseID(r.ID)
	if !ok {
		return nil, fmt.Errorf("storing request: malformed id %q", r.ID)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding request %s: %w", r.ID, err)
	}
	return item(pkRequests, reqSK(n), map[string]types.AttributeValue{
		"id": str(r.ID), "state": str(string(r.State)), "data": str(string(data)),
		"version": num(r.Version), "evseq": num(evseq), "evhash": str(evhash), "tok": str(tok),
	}), nil
}

// putReq is the transaction item writing r, with evseq events and token
// tok, on condition cond (with its values).
func putReq(r *actions.Request, evseq uint64, evhash, tok, cond string, vals map[string]types.AttributeValue) (types.TransactWriteItem, error) {
	it, err := reqItem(r, evseq, evhash, tok)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{
		Item:                      it,
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeValues: vals,
	}}, nil
}

// eventItems numbers events after last, stamps them with now when they
// carry no time, and returns their items, the outbox item and the new
// last seq.
func eventItems(id string, last uint64, prev string, now time.Time, events []actions.Event) ([]types.TransactWriteItem, uint64, string, error) {
	if len(events) == 0 {
		return nil, last, prev, nil
	}
	n, ok := parseID(id)
	if !ok {
		return nil, 0, "", fmt.Errorf("appending events: malformed id %q", id)
	}
	var items []types.TransactWriteItem
	for _, e := range events {
		last++
		e.Seq = last
		if e.At.IsZero() {
			e.At = now
		}
		actions.Chain(prev, &e)
		prev = e.Hash
		data, err := json.Marshal(e)
		if err != nil {
			return nil, 0, "", fmt.Errorf("encoding event %s/%d: %w", id, e.Seq, err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			Item: item(eventsPK(id), eventSK(e.Seq), map[string]types.AttributeValue{"data": str(string(data))}),
		}})
	}
	items = append(items, types.TransactWriteItem{Put: &types.Put{
		Item: item(pkOutbox, reqSK(n), map[string]types.AttributeValue{"id": str(id)}),
	}})
	return items, last, prev, nil
}

// activeItem puts request id in the ACTIVE partition (put) or takes it
// out.
func activeItem(id string, put bool) types.TransactWriteItem {
	n, _ := parseID(id)
	if put {
		return types.TransactWriteItem{Put: &types.Put{Item: item(pkActive, reqSK(n), map[string]types.AttributeValue{"id": str(id)})}}
	}
	return types.TransactWriteItem{Delete: &types.Delete{Key: key(pkActive, reqSK(n))}}
}

// fenceItem is the condition that lease l is current at now.
func fenceItem(l *actions.Lease, now time.Time) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		Key:                       key(leasePK(l.Name), skLease),
		ConditionExpression:       aws.String("#o = :o AND epoch = :e AND expires > :now"),
		ExpressionAttributeNames:  map[string]string{"#o": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": str(l.Owner), ":e": num(l.Epoch), ":now": num(now.UnixNano())},
	}}
}

// Create stores a new request r, claiming envelopeID and r.Locks, and
// appends events, in one transaction; see store.Store.Create.
func (s *Store) Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error) {
	res, err := s.create(r, envelopeID, events)
	if err != nil {
		return actions.Created{}, fmt.Errorf("creating request: %w", err)
	}
	return res, nil
}

func (s *Store) create(r *actions.Request, envelopeID string, events []actions.Event) (actions.Created, error) {
	var seq uint64
	var tok string
	locks := dedupe(r.Locks)
	for attempt := range s.attempts {
		if attempt > 0 {
			backoff(attempt)
		}
		if tok != "" {
			// The last attempt may have been written though its answer was
			// lost.
			if got, meta, err := s.getReq(formatID(seq)); err == nil && meta.tok == tok {
				return actions.Created{Request: got}, nil
			}
		}
		if envelopeID != "" {
			it, err := s.get(pkEnvelope, "slash:"+envelopeID)
			if err != nil {
				return actions.Created{}, err
			}
			if it != nil {
				prev, _, err := s.getReq(getS(it, "id"))
				if err != nil {
					return actions.Created{}, err
				}
				return actions.Created{Request: prev, Duplicate: true}, nil
			}
		}
		var res actions.Created
		for _, l := range locks {
			it, err := s.get(lockPK(l), skLock)
			if err != nil {
				return actions.Created{}, err
			}
			if it == nil {
				continue
			}
			h, _, err := s.getReq(getS(it, "holder"))
			if err != nil {
				return actions.Created{}, err
			}
			if res.LockedBy == nil {
				res.LockedBy = map[string]*actions.Request{}
			}
			res.LockedBy[l] = h
		}
		if len(res.LockedBy) > 0 {
			return res, nil
		}
		if seq == 0 {
			var err error
			if seq, err = s.nextID(); err != nil {
				return actions.Created{}, err
			}
		}
		nr := *r
		nr.ID = formatID(seq)
		now := s.now().UTC()
		nr.CreatedAt, nr.UpdatedAt, nr.Version = now, now, 1
		if nr.State == "" {
			nr.State = actions.Pending
		}
		evItems, last, lastHash, err := eventItems(nr.ID, 0, "", now, events)
		if err != nil {
			return actions.Created{}, err
		}
		tok = newToken()
		req, err := putReq(&nr, last, lastHash, tok, "attribute_not_exists(PK)", nil)
		if err != nil {
			return actions.Created{}, err
		}
		items := []types.TransactWriteItem{req}
		for _, l := range locks {
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				Item:                item(lockPK(l), skLock, map[string]types.AttributeValue{"holder": str(nr.ID)}),
				ConditionExpression: aws.String("attribute_not_exists(PK)"),
			}})
		}
		if envelopeID != "" {
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				Item:                s.envelopeItem("slash:"+envelopeID, now, nr.ID, tok),
				ConditionExpression: aws.String("attribute_not_exists(PK)"),
			}})
		}
		if nr.Active() {
			items = append(items, activeItem(nr.ID, true))
		}
		items = append(items, evItems...)
		err = s.transact("writing request "+nr.ID, items, tok)
		var c *cancelled
		if errors.As(err, &c) && c.contended() {
			continue // a lock or the envelope was taken meanwhile: look again
		}
		if err != nil {
			return actions.Created{}, err
		}
		return actions.Created{Request: &nr}, nil
	}
	return actions.Created{}, errContention
}

// nextID takes the next request number from the counter.
func (s *Store) nextID() (uint64, error) {
	out, err := call(s, "taking a request id", func(ctx context.Context) (*dynamodb.UpdateItemOutput, error) {
		return s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       key(pkMeta, "COUNTER"),
			UpdateExpression:          aws.String("ADD n :one"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1)},
			ReturnValues:              types.ReturnValueUpdatedNew,
		})
	})
	if err != nil {
		return 0, err
	}
	return uint64(getN(out.Attributes, "n")), nil
}

func dedupe(ls []string) []string {
	var out []string
	for _, l := range ls {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// Get returns the request with id, or actions.ErrNotFound.
func (s *Store) Get(id string) (*actions.Request, error) {
	r, _, err := s.getReq(id)
	return r, err
}

// Update is the compare-and-set; see store.Store.Update.
func (s *Store) Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error) {
	return s.update(nil, id, from, mutate, events)
}

// UpdateFenced is Update fenced by lease l: it changes nothing and
// returns an error wrapping actions.ErrLeaseLost unless l is current when
// it writes.
func (s *Store) UpdateFenced(l actions.Lease, id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error) {
	return s.update(&l, id, from, mutate, events)
}

// Transition moves a request from one of from to to; see Update.
func (s *Store) Transition(id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	return s.update(nil, id, from, transition(to, mutate), events)
}

// TransitionFenced is Transition fenced by lease l (see UpdateFenced).
func (s *Store) TransitionFenced(l actions.Lease, id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	return s.update(&l, id, from, transition(to, mutate), events)
}

func transition(to actions.State, mutate func(*actions.Request)) func(*actions.Request) error {
	return func(r *actions.Request) error {
		r.State = to
		if mutate != nil {
			mutate(r)
		}
		return nil
	}
}

// lockHolder reads lock l's holder; "" when it is free.
func (s *Store) lockHolder(l string) (string, error) {
	it, err := s.get(lockPK(l), skLock)
	if err != nil || it == nil {
		return "", err
	}
	return getS(it, "holder"), nil
}

func (s *Store) update(fence *actions.Lease, id string, from []actions.State, mutate func(*actions.Request) error, events []actions.Event) (*actions.Request, error) {
	var tok string
	for attempt := range s.attempts {
		if attempt > 0 {
			backoff(attempt)
		}
		r, meta, err := s.getReq(id)
		if err != nil {
			return nil, err
		}
		if tok != "" && meta.tok == tok {
			return r, nil // the last attempt was written; its answer was lost
		}
		now := s.now().UTC()
		if len(from) > 0 && !slices.Contains(from, r.State) {
			if fence != nil {
				if err := s.checkFence(fence, now); err != nil {
					return nil, err
				}
			}
			return nil, &actions.StateConflict{ID: id, Current: r}
		}
		wasTerminal, wasActive := r.State.Terminal(), r.Active()
		oldLocks := slices.Clone(r.Locks)
		if mutate != nil {
			if err := mutate(r); err != nil {
				return nil, err
			}
		}
		var lockItems []types.TransactWriteItem
		if !r.State.Terminal() && (wasTerminal || !slices.Equal(oldLocks, r.Locks)) {
			held := map[string]*actions.Request{}
			for _, l := range dedupe(r.Locks) {
				h, err := s.lockHolder(l)
				if err != nil {
					return nil, err
				}
				cond, vals := "attribute_not_exists(PK)", map[string]types.AttributeValue(nil)
				switch {
				case h == r.ID:
					continue
				case h != "":
					holder, _, err := s.getReq(h)
					if err != nil && !errors.Is(err, actions.ErrNotFound) {
						return nil, err
					}
					if err == nil && !holder.State.Terminal() {
						held[l] = holder
						continue
					}
					cond, vals = "holder = :h", map[string]types.AttributeValue{":h": str(h)}
				}
				lockItems = append(lockItems, types.TransactWriteItem{Put: &types.Put{
					Item:                      item(lockPK(l), skLock, map[string]types.AttributeValue{"holder": str(r.ID)}),
					ConditionExpression:       aws.String(cond),
					ExpressionAttributeValues: vals,
				}})
			}
			if len(held) > 0 {
				return nil, &actions.LockConflict{ID: r.ID, LockedBy: held}
			}
			for _, l := range dedupe(oldLocks) {
				if slices.Contains(r.Locks, l) {
					continue
				}
				it, err := s.releaseLock(l, r.ID)
				if err != nil {
					return nil, err
				}
				lockItems = append(lockItems, it...)
			}
		}
		if r.State.Terminal() && !wasTerminal {
			// A request that is going holds all its locks; ended, none.
			for _, l := range dedupe(r.Locks) {
				it, err := s.releaseLock(l, r.ID)
				if err != nil {
					return nil, err
				}
				lockItems = append(lockItems, it...)
			}
		}
		if wasActive != r.Active() {
			lockItems = append(lockItems, activeItem(r.ID, r.Active()))
		}
		r.UpdatedAt = now
		r.Version++
		evItems, last, lastHash, err := eventItems(id, meta.evseq, meta.evhash, now, events)
		if err != nil {
			return nil, err
		}
		tok = newToken()
		req, err := putReq(r, last, lastHash, tok, "version = :v AND evseq = :e",
			map[string]types.AttributeValue{":v": num(meta.version), ":e": num(meta.evseq)})
		if err != nil {
			return nil, err
		}
		items := append([]types.TransactWriteItem{req}, lockItems...)
		items = append(items, evItems...)
		fi := -1
		if fence != nil {
			fi = len(items)
			items = append(items, fenceItem(fence, now))
		}
		err = s.transact("updating request "+id, items, tok)
		var c *cancelled
		if errors.As(err, &c) && c.contended() {
			if c.failed(fi) {
				return nil, actions.LostLease(*fence, "not current when writing")
			}
			continue // changed meanwhile: look again
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, errContention
}

// releaseLock is the item deleting lock l when id holds it (none when
// another request does, or nobody).
func (s *Store) releaseLock(l, id string) ([]types.TransactWriteItem, error) {
	h, err := s.lockHolder(l)
	if err != nil || h != id {
		return nil, err
	}
	return []types.TransactWriteItem{{Delete: &types.Delete{
		Key:                       key(lockPK(l), skLock),
		ConditionExpression:       aws.String("holder = :h"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": str(id)},
	}}}, nil
}

// List returns the requests keep accepts, newest first.
func (s *Store) List(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	items, err := s.query(pkRequests, nil, true)
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	var out []*actions.Request
	for _, it := range items {
		r, _, err := decodeReq(it)
		if err != nil {
			return nil, err
		}
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ListActive returns the active requests (actions.Request.Active: still
// going, or ended but not yet told to their requester) that keep accepts,
// newest first. It reads only those: the ACTIVE partition's ids, then
// each request.
func (s *Store) ListActive(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	items, err := s.query(pkActive, nil, true)
	if err != nil {
		return nil, fmt.Errorf("listing active requests: %w", err)
	}
	var out []*actions.Request
	for _, it := range items {
		r, _, err := s.getReq(getS(it, "id"))
		if errors.Is(err, actions.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing active requests: %w", err)
		}
		if r.Active() && (keep == nil || keep(r)) {
			out = append(out, r)
		}
	}
	return out, nil
}

// AppendEvents stores events for request id, to be delivered in order.
func (s *Store) AppendEvents(id string, events ...actions.Event) error {
	return s.write(nil, id, nil, events)
}

// AppendEventsFenced is AppendEvents fenced by lease l (see UpdateFenced).
func (s *Store) AppendEventsFenced(l actions.Lease, id string, events ...actions.Event) error {
	return s.write(&l, id, nil, events)
}

// SaveCheckpoint durably records v under the request's key.
func (s *Store) SaveCheckpoint(id, key string, v any) error {
	return s.saveCheckpoint(nil, id, key, v, nil)
}

// SaveCheckpointEvents records v under the request's key and appends
// events, in one transaction.
func (s *Store) SaveCheckpointEvents(id, key string, v any, events ...actions.Event) error {
	return s.saveCheckpoint(nil, id, key, v, events)
}

// SaveCheckpointFenced is SaveCheckpoint fenced by lease l (see
// UpdateFenced).
func (s *Store) SaveCheckpointFenced(l actions.Lease, id, key string, v any) error {
	return s.saveCheckpoint(&l, id, key, v, nil)
}

// SaveCheckpointEventsFenced is SaveCheckpointEvents fenced by lease l.
func (s *Store) SaveCheckpointEventsFenced(l actions.Lease, id, key string, v any, events ...actions.Event) error {
	return s.saveCheckpoint(&l, id, key, v, events)
}

func (s *Store) saveCheckpoint(fence *actions.Lease, id, k string, v any, events []actions.Event) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %s/%s: %w", id, k, err)
	}
	cp := types.TransactWriteItem{Put: &types.Put{
		Item: item(cpPK(id), k, map[string]types.AttributeValue{"data": str(string(data))}),
	}}
	if err := s.write(fence, id, &cp, events); err != nil {
		return fmt.Errorf("saving checkpoint %s/%s: %w", id, k, err)
	}
	return nil
}

// write appends events to request id together with extra (a checkpoint),
// fenced by fence, in one transaction.
func (s *Store) write(fence *actions.Lease, id string, extra *types.TransactWriteItem, events []actions.Event) error {
	if len(events) == 0 {
		var items []types.TransactWriteItem
		if extra != nil {
			items = append(items, *extra)
		}
		switch {
		case fence == nil && extra == nil:
			return nil
		case fence == nil:
			_, err := call(s, "writing "+id, func(ctx context.Context) (*dynamodb.PutItemOutput, error) {
				return s.c.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: extra.Put.Item})
			})
			return err
		case extra == nil:
			return s.checkFence(fence, s.now().UTC())
		}
		err := s.transact("writing "+id, append(items, fenceItem(fence, s.now().UTC())), newToken())
		var c *cancelled
		if errors.As(err, &c) && c.failed(1) {
			return actions.LostLease(*fence, "not current when writing")
		}
		return err
	}
	var tok string
	for attempt := range s.attempts {
		if attempt > 0 {
			backoff(attempt)
		}
		_, meta, err := s.getReq(id)
		if err != nil {
			return err
		}
		if tok != "" && meta.tok == tok {
			return nil // the last attempt was written; its answer was lost
		}
		now := s.now().UTC()
		evItems, last, lastHash, err := eventItems(id, meta.evseq, meta.evhash, now, events)
		if err != nil {
			return err
		}
		n, _ := parseID(id)
		tok = newToken()
		items := []types.TransactWriteItem{{Update: &types.Update{
			Key:                       key(pkRequests, reqSK(n)),
			UpdateExpression:          aws.String("SET evseq = :new, evhash = :h, tok = :tok"),
			ConditionExpression:       aws.String("evseq = :old"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":new": num(last), ":old": num(meta.evseq), ":h": str(lastHash), ":tok": str(tok)},
		}}}
		if extra != nil {
			items = append(items, *extra)
		}
		items = append(items, evItems...)
		fi := -1
		if fence != nil {
			fi = len(items)
			items = append(items, fenceItem(fence, now))
		}
		err = s.transact("appending events to "+id, items, tok)
		var c *cancelled
		if errors.As(err, &c) && c.contended() {
			if c.failed(fi) {
				return actions.LostLease(*fence, "not current when writing")
			}
			continue
		}
		return err
	}
	return errContention
}

// Events returns every event of the request, in order.
func (s *Store) Events(id string) ([]actions.Event, error) {
	return s.events(id, 0)
}

func (s *Store) events(id string, after uint64) ([]actions.Event, error) {
	items, err := s.query(eventsPK(id), &[2]string{eventSK(after + 1), maxSeq}, false)
	if err != nil {
		return nil, fmt.Errorf("reading events of %s: %w", id, err)
	}
	out := make([]actions.Event, 0, len(items))
	for _, it := range items {
		var e actions.Event
		if err := json.Unmarshal([]byte(getS(it, "data")), &e); err != nil {
			return nil, fmt.Errorf("decoding event %s/%s: %w", id, getS(it, "SK"), err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Undelivered returns the request's events after its cursor, in order,
// and the cursor.
func (s *Store) Undelivered(id string) ([]actions.Event, actions.Cursor, error) {
	var cur actions.Cursor
	it, err := s.get(eventsPK(id), skCursor)
	if err != nil {
		return nil, cur, err
	}
	if it != nil {
		if err := json.Unmarshal([]byte(getS(it, "data")), &cur); err != nil {
			return nil, cur, fmt.Errorf("decoding cursor %s: %w", id, err)
		}
	}
	evs, err := s.events(id, cur.Delivered)
	return evs, cur, err
}

// MarkDelivered advances the request's cursor; once it reaches the last
// event the request leaves the outbox, in the same transaction.
func (s *Store) MarkDelivered(id string, cur actions.Cursor) error {
	data, _ := json.Marshal(cur)
	n, ok := parseID(id)
	for attempt := range s.attempts {
		if attempt > 0 {
			backoff(attempt)
		}
		var last uint64
		cond := "attribute_not_exists(PK)"
		var vals map[string]types.AttributeValue
		if ok {
			_, meta, err := s.getReq(id)
			if err != nil && !errors.Is(err, actions.ErrNotFound) {
				return err
			}
			if err == nil {
				last = meta.evseq
				cond, vals = "evseq = :e", map[string]types.AttributeValue{":e": num(last)}
			}
		}
		items := []types.TransactWriteItem{{Put: &types.Put{
			Item: item(eventsPK(id), skCursor, map[string]types.AttributeValue{"data": str(string(data))}),
		}}}
		if ok {
			// The condition: no event was appended since the read.
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				Key: key(pkRequests, reqSK(n)), ConditionExpression: aws.String(cond), ExpressionAttributeValues: vals,
			}})
			if last <= cur.Delivered {
				items = append(items, types.TransactWriteItem{Delete: &types.Delete{Key: key(pkOutbox, reqSK(n))}})
			}
		}
		err := s.transact("marking "+id+" delivered", items, newToken())
		var c *cancelled
		if errors.As(err, &c) && c.contended() {
			continue
		}
		return err
	}
	return errContention
}

// Outbox returns the ids of requests with undelivered events, oldest
// request first.
func (s *Store) Outbox() ([]string, error) {
	items, err := s.query(pkOutbox, nil, false)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, getS(it, "id"))
	}
	return ids, nil
}

// LoadCheckpoint reads the request's key into v; false when none.
func (s *Store) LoadCheckpoint(id, k string, v any) (bool, error) {
	it, err := s.get(cpPK(id), k)
	if err != nil || it == nil {
		return false, err
	}
	if err := json.Unmarshal([]byte(getS(it, "data")), v); err != nil {
		return false, fmt.Errorf("decoding checkpoint %s/%s: %w", id, k, err)
	}
	return true, nil
}

func (s *Store) envelopeItem(k string, at time.Time, id, tok string) map[string]types.AttributeValue {
	attrs := map[string]types.AttributeValue{
		"at": num(at.UnixNano()), "tok": str(tok),
		"expires_at": num(at.Add(s.housekeeping).Unix()),
	}
	if id != "" {
		attrs["id"] = str(id)
	}
	return item(pkEnvelope, k, attrs)
}

// ClaimEnvelope records a Slack envelope id; it returns false when the id
// was claimed before, so a redelivered envelope is acted on once.
func (s *Store) ClaimEnvelope(envelopeID string) (bool, error) {
	k := "click:" + envelopeID
	tok := newToken()
	_, err := call(s, "claiming envelope "+envelopeID, func(ctx context.Context) (*dynamodb.PutItemOutput, error) {
		return s.c.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           &s.table,
			Item:                s.envelopeItem(k, s.now().UTC(), "", tok),
			ConditionExpression: aws.String("attribute_not_exists(PK)"),
		})
	})
	if isCondFailed(err) {
		// Claimed before, unless by this very call (an SDK retry whose
		// first answer was lost).
		it, err := s.get(pkEnvelope, k)
		if err != nil {
			return false, err
		}
		return getS(it, "tok") == tok, nil
	}
	return err == nil, err
}

// PruneEnvelopes forgets envelope ids claimed before t. (TTL deletes them
// too, eventually.)
func (s *Store) PruneEnvelopes(t time.Time) (int, error) {
	items, err := s.query(pkEnvelope, nil, false)
	if err != nil {
		return 0, fmt.Errorf("pruning envelopes: %w", err)
	}
	n := 0
	for _, it := range items {
		at := getN(it, "at")
		if at >= t.UnixNano() {
			continue
		}
		_, err := call(s, "pruning envelope "+getS(it, "SK"), func(ctx context.Context) (*dynamodb.DeleteItemOutput, error) {
			return s.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 &s.table,
				Key:                       key(pkEnvelope, getS(it, "SK")),
				ConditionExpression:       aws.String("#at = :at"),
				ExpressionAttributeNames:  map[string]string{"#at": "at"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(at)},
			})
		})
		switch {
		case isCondFailed(err):
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}

// Ping writes to the table, to tell that it is writable; for readiness.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item:      item(pkMeta, "PROBE", map[string]types.AttributeValue{"at": num(s.now().UnixNano())}),
	})
	if err != nil {
		return fmt.Errorf("writing to the store: %w", err)
	}
	return nil
}

// unixNano is t as nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

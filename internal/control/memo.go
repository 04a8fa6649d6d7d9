package control

import (
	"context"
	"sync"
)

// Memo is a scratch space for one apply of one control (issue 17): a
// target's Observe may leave what it read for the Enforce of the same control
// that follows, and Enforce may use it instead of reading again, saving a
// round trip on the clock. The rule that keeps receipts honest: only that
// first Observe puts and only Enforce takes. The read-back after Enforce, the
// confirmation of "gone" and every verification run without a memo and read
// fresh, so what a stale memo leads Enforce to do is judged by a fresh read.
//
// A target must work the same without a memo (MemoFrom returns nil), and an
// Observe without one must not read more than it needs for its answer.
type Memo struct {
	mu sync.Mutex
	m  map[string]any
}

type memoKey struct{}

// WithMemo returns a context carrying a new, empty Memo, and the Memo.
func WithMemo(ctx context.Context) (context.Context, *Memo) {
	memo := &Memo{m: map[string]any{}}
	return context.WithValue(ctx, memoKey{}, memo), memo
}

// WithoutMemo returns ctx with no Memo, for reads that must be fresh.
func WithoutMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, (*Memo)(nil))
}

// MemoFrom returns the Memo ctx carries, or nil.
func MemoFrom(ctx context.Context) *Memo {
	memo, _ := ctx.Value(memoKey{}).(*Memo)
	return memo
}

// Put leaves v under key, replacing what was there. A nil Memo ignores it.
func (m *Memo) Put(key string, v any) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = v
}

// Take returns what is under key and removes it: a read is used once.
// A nil Memo has nothing.
func (m *Memo) Take(key string) (any, bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	delete(m.m, key)
	return v, ok
}

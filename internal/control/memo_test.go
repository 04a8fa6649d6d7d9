package control_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/offboard/offboard/internal/control"
)

func TestMemo(t *testing.T) {
	assert.Nil(t, control.MemoFrom(t.Context()), "no memo unless asked for")
	var none *control.Memo
	none.Put("k", 1) // a nil memo ignores puts and has nothing
	_, ok := none.Take("k")
	assert.False(t, ok)

	ctx, memo := control.WithMemo(t.Context())
	assert.Same(t, memo, control.MemoFrom(ctx))
	assert.Nil(t, control.MemoFrom(control.WithoutMemo(ctx)), "a fresh read sees no memo")

	memo.Put("k", "read")
	v, ok := memo.Take("k")
	assert.True(t, ok)
	assert.Equal(t, "read", v)
	_, ok = memo.Take("k")
	assert.False(t, ok, "taken once")

	// Safe for concurrent use (run with -race, as CI does).
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			memo.Put("shared", i)
			if _, ok := memo.Take("shared"); ok {
				mu.Lock()
				taken++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Positive(t, taken)
}

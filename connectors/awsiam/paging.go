package awsiam

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// maxPages stops a server that keeps answering IsTruncated from looping us forever.
const maxPages = 10000

// pagingError is a list that cannot be trusted to be whole: the server said
// there was more without saying where, served a Marker again (a server that
// ignores Marker serves the first page again), or repeated an item.
type pagingError struct{ action, msg string }

func (e *pagingError) Error() string {
	return e.action + ": " + e.msg + ": the list cannot be trusted to be whole"
}

// walk calls fetch for every page of one IAM list call, following Marker.
// fetch returns the page's item ids, IsTruncated and the next Marker. A list
// is only as good as its paging, so anything but a clean walk is an error.
func walk(action string, fetch func(marker *string) (ids []string, truncated bool, next *string, err error)) error {
	var marker *string
	markers := map[string]bool{}
	ids := map[string]bool{}
	for n := 1; ; n++ {
		page, truncated, next, err := fetch(marker)
		if err != nil {
			return err
		}
		for _, id := range page {
			if ids[id] {
				return &pagingError{action, fmt.Sprintf("%s listed twice (page %d)", id, n)}
			}
			ids[id] = true
		}
		if !truncated {
			return nil
		}
		m := aws.ToString(next)
		switch {
		case m == "":
			return &pagingError{action, fmt.Sprintf("IsTruncated without a Marker on page %d", n)}
		case markers[m]:
			return &pagingError{action, fmt.Sprintf("Marker repeated on page %d", n)}
		case n >= maxPages:
			return &pagingError{action, fmt.Sprintf("more than %d pages", maxPages)}
		}
		markers[m] = true
		marker = next
	}
}

func isPagingError(err error) bool {
	var pe *pagingError
	return errors.As(err, &pe)
}
